#include "agent/grpc_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/message_lite.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace siper::agent::grpcwire {
namespace {

// Stack of the I/O thread: OpenSSL's handshake and nghttp2 need little; the
// big buffers (TLS records, zlib state) are on the heap.
constexpr size_t kIoThreadStack = 256 << 10;
constexpr size_t kReadChunk = 16 << 10;
constexpr size_t kSendChunk = 64 << 10;  // bytes taken from nghttp2 before they are written

void InitOpenSsl() {
  static std::once_flag once;
  std::call_once(once, [] {
    // No error strings: messages name the failure themselves (verify errors
    // have their own strings); the OpenSSL configuration is loaded so that
    // the system's policy (openssl.cnf) still applies.
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
                     nullptr);
  });
}

std::string OpenSslError() {
  const unsigned long error = ERR_get_error();  // NOLINT(runtime/int)
  ERR_clear_error();
  if (error == 0) return "no detail";
  const char* reason = ERR_reason_error_string(error);
  if (reason != nullptr) return reason;
  char buffer[128];
  ERR_error_string_n(error, buffer, sizeof(buffer));
  return buffer;
}

bool ParseTarget(const std::string& target, std::string* host, std::string* port) {
  if (!target.empty() && target[0] == '[') {
    const size_t close = target.find(']');
    if (close == std::string::npos || close + 1 >= target.size() || target[close + 1] != ':') {
      return false;
    }
    *host = target.substr(1, close - 1);
    *port = target.substr(close + 2);
  } else {
    const size_t colon = target.rfind(':');
    if (colon == std::string::npos || target.find(':') != colon) return false;
    *host = target.substr(0, colon);
    *port = target.substr(colon + 1);
  }
  int number = 0;
  return !host->empty() && absl::SimpleAtoi(*port, &number) && number > 0 && number < 65536;
}

bool IsIpAddress(const std::string& host) {
  in6_addr address6;
  in_addr address4;
  return inet_pton(AF_INET, host.c_str(), &address4) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &address6) == 1;
}

// gzip (RFC 1952), as gRPC's "gzip" message encoding.
bool Gzip(std::string_view in, std::string* out) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  const size_t start = out->size();
  out->resize(start + deflateBound(&z, in.size()));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data() + start);
  z.avail_out = static_cast<uInt>(out->size() - start);
  const int rc = deflate(&z, Z_FINISH);
  out->resize(start + z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END;
}

// Inflates gzip (or zlib) data, at most `limit` bytes out.
absl::Status Gunzip(std::string_view in, size_t limit, std::string* out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) return absl::InternalError("zlib: inflateInit failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  out->clear();
  std::array<char, 16384> buffer;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buffer.data());
    z.avail_out = buffer.size();
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      return absl::InternalError("received a message that is not valid gzip");
    }
    const size_t produced = buffer.size() - z.avail_out;
    if (out->size() + produced > limit) {
      inflateEnd(&z);
      return absl::ResourceExhaustedError(absl::StrCat("received a message larger than the limit (",
                                                       limit, " bytes) once decompressed"));
    }
    out->append(buffer.data(), produced);
    if (rc != Z_STREAM_END && z.avail_in == 0 && produced == 0) {
      inflateEnd(&z);
      return absl::InternalError("received a truncated gzip message");
    }
  }
  inflateEnd(&z);
  return absl::OkStatus();
}

absl::StatusCode CodeForRstStream(uint32_t error_code) {
  switch (error_code) {
    case NGHTTP2_REFUSED_STREAM:
      return absl::StatusCode::kUnavailable;
    case NGHTTP2_CANCEL:
      return absl::StatusCode::kCancelled;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return absl::StatusCode::kResourceExhausted;
    case NGHTTP2_INADEQUATE_SECURITY:
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kInternal;
  }
}

nghttp2_nv Header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

absl::StatusCode CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInternal;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    int value = 0;
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2])) &&
        absl::SimpleHexAtoi(std::string(text.substr(i + 1, 2)), &value)) {
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

bool IsConnectedToItself(int fd) {
  sockaddr_storage local{};
  sockaddr_storage peer{};
  socklen_t local_size = sizeof(local);
  socklen_t peer_size = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0) {
    return false;
  }
  return local_size == peer_size && std::memcmp(&local, &peer, local_size) == 0;
}

class Call::Impl {
 public:
  Impl(ClientOptions options, std::string method, Handlers handlers, absl::Time deadline)
      : options_(std::move(options)),
        method_(std::move(method)),
        handlers_(std::move(handlers)),
        deadline_(deadline) {}

  ~Impl() {
    Cancel();
    if (started_) pthread_join(thread_, nullptr);
    if (event_fd_ >= 0) close(event_fd_);
  }

  absl::Status StartThread() {
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kIoThreadStack);
    const int rc = pthread_create(
        &thread_, &attr,
        [](void* self) -> void* {
          static_cast<Impl*>(self)->Run();
          return nullptr;
        },
        this);
    pthread_attr_destroy(&attr);
    if (rc != 0) return absl::InternalError(absl::StrCat("pthread_create: ", strerror(rc)));
    started_ = true;
    return absl::OkStatus();
  }

  // Ends the call without a thread (StartThread failed).
  void FailEarly(absl::Status status) {
    std::lock_guard lock(mu_);
    status_ = std::move(status);
    finished_ = true;
  }

  bool Write(std::string_view serialized) {
    std::string frame(5, '\0');
    bool compressed = false;
    if (options_.gzip && !serialized.empty()) {
      compressed = Gzip(serialized, &frame);
      if (!compressed) frame.resize(5);
    }
    if (!compressed) frame.append(serialized);
    const size_t length = frame.size() - 5;
    if (length > 0xffffffffu) return false;
    frame[0] = compressed ? 1 : 0;
    frame[1] = static_cast<char>((length >> 24) & 0xff);
    frame[2] = static_cast<char>((length >> 16) & 0xff);
    frame[3] = static_cast<char>((length >> 8) & 0xff);
    frame[4] = static_cast<char>(length & 0xff);
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        return finished_ || cancel_ || out_.size() - out_pos_ <= options_.max_buffered_bytes;
      });
      if (finished_ || cancel_ || writes_done_) return false;
      if (out_pos_ > 0 && out_pos_ >= out_.size() / 2) {
        out_.erase(0, out_pos_);
        out_pos_ = 0;
      }
      out_.append(frame);
    }
    Wake();
    return true;
  }

  void WritesDone() {
    {
      std::lock_guard lock(mu_);
      writes_done_ = true;
    }
    Wake();
  }

  void Cancel() {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      cancel_ = true;
    }
    cv_.notify_all();
    Wake();
  }

  absl::Status Finish() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_; });
    return status_;
  }

 private:
  void Wake() {
    if (event_fd_ < 0) return;
    const uint64_t one = 1;
    ssize_t ignored = write(event_fd_, &one, sizeof(one));
    (void)ignored;
  }

  void DrainEventFd() {
    uint64_t value = 0;
    ssize_t ignored = read(event_fd_, &value, sizeof(value));
    (void)ignored;
  }

  bool Cancelled() {
    std::lock_guard lock(mu_);
    return cancel_;
  }

  // Waits for `events` on the socket (and the eventfd) until `until`.
  // Returns the socket's revents, 0 on timeout or a wake-up.
  int PollSocket(short events, absl::Time until) {
    pollfd fds[2] = {{fd_, events, 0}, {event_fd_, POLLIN, 0}};
    int timeout_ms = -1;
    if (until != absl::InfiniteFuture()) {
      const absl::Duration left = until - absl::Now();
      timeout_ms = left <= absl::ZeroDuration()
                       ? 0
                       : static_cast<int>(std::min<int64_t>(
                             absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
                             3600 * 1000));
    }
    const int rc = poll(fds, 2, timeout_ms);
    if (rc < 0) return 0;
    if (fds[1].revents & POLLIN) DrainEventFd();
    return fds[0].revents;
  }

  // --- connection set-up (I/O thread) ---

  absl::Status ConnectTcp(const std::string& host, const std::string& port,
                          absl::Time connect_deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* addresses = nullptr;
    const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &addresses);
    if (rc != 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot resolve ", options_.target, ": ", gai_strerror(rc)));
    }
    std::string last_error = "no address";
    for (addrinfo* address = addresses; address != nullptr; address = address->ai_next) {
      fd_ = socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   address->ai_protocol);
      if (fd_ < 0) {
        last_error = strerror(errno);
        continue;
      }
      int error = 0;
      if (connect(fd_, address->ai_addr, address->ai_addrlen) != 0) {
        error = errno;
        if (error == EINPROGRESS) {
          error = ETIMEDOUT;
          while (!Cancelled() && absl::Now() < connect_deadline) {
            if (PollSocket(POLLOUT, connect_deadline) != 0) {
              socklen_t size = sizeof(error);
              if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
              break;
            }
          }
        }
      }
      if (error == 0 && IsConnectedToItself(fd_)) error = ECONNREFUSED;
      if (error == 0) {
        const int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(addresses);
        return absl::OkStatus();
      }
      last_error = strerror(error);
      close(fd_);
      fd_ = -1;
      if (Cancelled()) break;
    }
    freeaddrinfo(addresses);
    if (Cancelled()) return absl::CancelledError("cancelled");
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", options_.target, ": ", last_error));
  }

  absl::Status SetUpTls(const std::string& host) {
    InitOpenSsl();
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return absl::InternalError("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    // TLS 1.2: forward secrecy and AEAD only (RFC 7540 9.2.2); TLS 1.3's suites are all fine.
    SSL_CTX_set_cipher_list(ctx_,
                            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char kAlpn[] = {2, 'h', '2'};
    if (SSL_CTX_set_alpn_protos(ctx_, kAlpn, sizeof(kAlpn)) != 0) {
      return absl::InternalError("cannot set ALPN");
    }
    // The CA(s): only these, not the system's store.
    {
      X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
      BIO* bio = BIO_new_mem_buf(options_.ca_pem.data(), static_cast<int>(options_.ca_pem.size()));
      int count = 0;
      while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        if (X509_STORE_add_cert(store, cert) == 1) ++count;
        X509_free(cert);
      }
      BIO_free(bio);
      ERR_clear_error();
      if (count == 0) return absl::InvalidArgumentError("the CA is not a PEM certificate");
    }
    if (!options_.cert_pem.empty() || !options_.key_pem.empty()) {
      BIO* bio =
          BIO_new_mem_buf(options_.cert_pem.data(), static_cast<int>(options_.cert_pem.size()));
      X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      bool ok = leaf != nullptr && SSL_CTX_use_certificate(ctx_, leaf) == 1;
      X509_free(leaf);
      while (ok) {
        X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        if (extra == nullptr) break;
        if (SSL_CTX_add_extra_chain_cert(ctx_, extra) != 1) {
          X509_free(extra);
          ok = false;
        }
      }
      BIO_free(bio);
      ERR_clear_error();
      if (!ok) return absl::InvalidArgumentError("the client certificate is not valid PEM");
      bio = BIO_new_mem_buf(options_.key_pem.data(), static_cast<int>(options_.key_pem.size()));
      EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
      ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx_, key) == 1 &&
           SSL_CTX_check_private_key(ctx_) == 1;
      EVP_PKEY_free(key);
      ERR_clear_error();
      // The key's bytes are never put in a message.
      if (!ok) {
        return absl::InvalidArgumentError(
            "the client key is not valid PEM or does not match the certificate");
      }
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return absl::InternalError("SSL_new failed");
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (IsIpAddress(host)) {
      // RFC 6066: no IP address in SNI; the certificate's IP SAN is checked.
      if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
        return absl::InternalError("cannot set the address to verify");
      }
    } else {
      if (SSL_set_tlsext_host_name(ssl_, host.c_str()) != 1 ||
          X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1) {
        return absl::InternalError("cannot set the host name to verify");
      }
    }
    SSL_set_fd(ssl_, fd_);
    return absl::OkStatus();
  }

  absl::Status Handshake(absl::Time connect_deadline) {
    while (true) {
      ERR_clear_error();
      const int rc = SSL_connect(ssl_);
      if (rc == 1) break;
      const int error = SSL_get_error(ssl_, rc);
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        const long verify = SSL_get_verify_result(ssl_);  // NOLINT(runtime/int)
        std::string detail;
        if (verify != X509_V_OK) {
          detail =
              absl::StrCat("certificate verify failed: ", X509_verify_cert_error_string(verify));
        } else if (error == SSL_ERROR_SYSCALL || error == SSL_ERROR_ZERO_RETURN) {
          detail = errno != 0 ? strerror(errno) : "connection closed by the peer";
        } else {
          detail = OpenSslError();
        }
        return absl::UnavailableError(
            absl::StrCat("TLS handshake with ", options_.target, " failed: ", detail));
      }
      if (Cancelled()) return absl::CancelledError("cancelled");
      if (absl::Now() >= connect_deadline) {
        return absl::UnavailableError(
            absl::StrCat("TLS handshake with ", options_.target, " timed out"));
      }
      PollSocket(error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, connect_deadline);
    }
    const unsigned char* alpn = nullptr;
    unsigned int alpn_size = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_size);
    if (alpn_size != 2 || std::memcmp(alpn, "h2", 2) != 0) {
      return absl::UnavailableError(
          absl::StrCat(options_.target, " did not agree to HTTP/2 (ALPN h2) in the TLS handshake"));
    }
    return absl::OkStatus();
  }

  // --- HTTP/2 (I/O thread) ---

  absl::Status SetUpSession(const std::string& host, const std::string& port) {
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) {
      return absl::InternalError("nghttp2: out of memory");
    }
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &Impl::OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &Impl::OnData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &Impl::OnFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &Impl::OnStreamClose);
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096);
    const int rc = nghttp2_session_client_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (rc != 0) return absl::InternalError("nghttp2: cannot create the session");
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));

    const std::string authority = IsIpAddress(host) && host.find(':') != std::string::npos
                                      ? absl::StrCat("[", host, "]:", port)
                                      : absl::StrCat(host, ":", port);
    std::vector<nghttp2_nv> headers = {
        Header(":method", "POST"),
        Header(":scheme", "https"),
        Header(":path", method_),
        Header(":authority", authority),
        Header("content-type", "application/grpc"),
        Header("te", "trailers"),
        Header("grpc-accept-encoding", "identity,gzip"),
        Header("user-agent", "siper-agent/" SIPER_VERSION),
    };
    if (options_.gzip) headers.push_back(Header("grpc-encoding", "gzip"));
    std::string timeout;
    if (deadline_ != absl::InfiniteFuture()) {
      // grpc-timeout: at most 8 digits, in milliseconds or seconds.
      const int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline_ - absl::Now()));
      timeout = ms < 100000000 ? absl::StrCat(ms, "m") : absl::StrCat(ms / 1000, "S");
      headers.push_back(Header("grpc-timeout", timeout));
    }
    nghttp2_data_provider provider{};
    provider.read_callback = &Impl::ReadRequestBody;
    stream_id_ =
        nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &provider, this);
    if (stream_id_ < 0) {
      return absl::InternalError(
          absl::StrCat("nghttp2: cannot submit the request: ", nghttp2_strerror(stream_id_)));
    }
    return absl::OkStatus();
  }

  static ssize_t ReadRequestBody(nghttp2_session*, int32_t, uint8_t* buffer, size_t length,
                                 uint32_t* flags, nghttp2_data_source*, void* user_data) {
    Impl* self = static_cast<Impl*>(user_data);
    size_t taken = 0;
    {
      std::lock_guard lock(self->mu_);
      const size_t available = self->out_.size() - self->out_pos_;
      if (available == 0) {
        if (self->writes_done_) {
          *flags |= NGHTTP2_DATA_FLAG_EOF;
          return 0;
        }
        self->body_deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
      }
      taken = std::min(length, available);
      std::memcpy(buffer, self->out_.data() + self->out_pos_, taken);
      self->out_pos_ += taken;
      if (self->out_pos_ == self->out_.size()) {
        self->out_.clear();
        self->out_pos_ = 0;
      }
    }
    self->cv_.notify_all();  // room for a blocked Write()
    return static_cast<ssize_t>(taken);
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t name_size, const uint8_t* value, size_t value_size, uint8_t,
                      void* user_data) {
    Impl* self = static_cast<Impl*>(user_data);
    if (frame->hd.stream_id != self->stream_id_) return 0;
    const std::string_view key(reinterpret_cast<const char*>(name), name_size);
    const std::string_view text(reinterpret_cast<const char*>(value), value_size);
    if (key == ":status") {
      int status = 0;
      if (absl::SimpleAtoi(std::string(text), &status)) self->http_status_ = status;
    } else if (key == "content-type") {
      self->content_type_ = std::string(text);
    } else if (key == "grpc-encoding") {
      self->encoding_ = std::string(text);
    } else if (key == "grpc-status") {
      self->grpc_status_ = std::string(text);
      self->has_grpc_status_ = true;
    } else if (key == "grpc-message") {
      self->grpc_message_ = PercentDecode(text);
    }
    return 0;
  }

  static int OnData(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                    size_t length, void* user_data) {
    Impl* self = static_cast<Impl*>(user_data);
    if (stream_id != self->stream_id_ || self->local_error_) return 0;
    if (self->http_status_ != 200 || self->content_type_.rfind("application/grpc", 0) != 0) {
      return 0;  // not gRPC: the status comes from the HTTP status at the end
    }
    self->in_.append(reinterpret_cast<const char*>(data), length);
    absl::Status status = self->TakeMessages();
    if (!status.ok()) {
      self->FailStream(session, std::move(status));
    }
    return 0;
  }

  absl::Status TakeMessages() {
    size_t pos = 0;
    absl::Status status;
    while (in_.size() - pos >= 5) {
      const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + pos);
      const bool compressed = (p[0] & 1) != 0;
      const size_t length = (static_cast<size_t>(p[1]) << 24) | (static_cast<size_t>(p[2]) << 16) |
                            (static_cast<size_t>(p[3]) << 8) | p[4];
      if (length > options_.max_receive_message_bytes) {
        status = absl::ResourceExhaustedError(
            absl::StrCat("received a message of ", length, " bytes, more than the limit (",
                         options_.max_receive_message_bytes, ")"));
        break;
      }
      if (in_.size() - pos - 5 < length) break;
      const std::string_view payload(in_.data() + pos + 5, length);
      pos += 5 + length;
      if (compressed) {
        if (encoding_ != "gzip") {
          status = absl::InternalError(
              absl::StrCat("received a compressed message with grpc-encoding '", encoding_, "'"));
          break;
        }
        status = Gunzip(payload, options_.max_receive_message_bytes, &inflated_);
        if (!status.ok()) break;
        if (handlers_.on_message) status = handlers_.on_message(inflated_);
      } else if (handlers_.on_message) {
        status = handlers_.on_message(payload);
      }
      if (!status.ok()) break;
    }
    in_.erase(0, pos);
    return status;
  }

  void FailStream(nghttp2_session* session, absl::Status status) {
    if (local_error_) return;
    local_error_ = true;
    local_status_ = std::move(status);
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id_, NGHTTP2_CANCEL);
  }

  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Impl* self = static_cast<Impl*>(user_data);
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
      self->ping_outstanding_ = false;
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
      self->goaway_ = true;
      self->goaway_code_ = frame->goaway.error_code;
      self->goaway_last_stream_ = frame->goaway.last_stream_id;
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user_data) {
    Impl* self = static_cast<Impl*>(user_data);
    if (stream_id != self->stream_id_) return 0;
    self->stream_closed_ = true;
    self->stream_status_ = self->StatusAtClose(error_code);
    return 0;
  }

  absl::Status StatusAtClose(uint32_t error_code) {
    if (local_error_) return local_status_;
    if (has_grpc_status_) {
      int code = 0;
      if (!absl::SimpleAtoi(grpc_status_, &code) || code < 0 || code > 16) {
        return absl::UnknownError(absl::StrCat("invalid grpc-status '", grpc_status_, "'"));
      }
      return absl::Status(static_cast<absl::StatusCode>(code), grpc_message_);
    }
    if (http_status_ != 0 && http_status_ != 200) {
      return absl::Status(CodeForHttpStatus(http_status_),
                          absl::StrCat("HTTP status ", http_status_, " from ", options_.target));
    }
    if (error_code != NGHTTP2_NO_ERROR) {
      return absl::Status(CodeForRstStream(error_code),
                          absl::StrCat("stream reset by ", options_.target, " (HTTP/2 error ",
                                       nghttp2_http2_strerror(error_code), ")"));
    }
    if (http_status_ == 200 && content_type_.rfind("application/grpc", 0) != 0) {
      return absl::UnknownError(
          absl::StrCat(options_.target, " answered with content-type '", content_type_, "'"));
    }
    return absl::UnknownError(absl::StrCat(options_.target, " ended the call without grpc-status"));
  }

  absl::Status ConnectionLost(std::string_view what) {
    if (goaway_) {
      return absl::UnavailableError(absl::StrCat(options_.target, " went away (GOAWAY ",
                                                 nghttp2_http2_strerror(goaway_code_), ") and ",
                                                 std::string(what)));
    }
    return absl::UnavailableError(
        absl::StrCat("connection to ", options_.target, " ", std::string(what)));
  }

  // Writes what nghttp2 has to send, as far as the socket takes it.
  // Error: the connection is gone.
  absl::Status Flush() {
    while (true) {
      if (tls_out_pos_ == tls_out_.size()) {
        tls_out_.clear();
        tls_out_pos_ = 0;
        while (tls_out_.size() < kSendChunk) {
          const uint8_t* data = nullptr;
          const ssize_t n = nghttp2_session_mem_send(session_, &data);
          if (n < 0) {
            return absl::InternalError(
                absl::StrCat("HTTP/2: ", nghttp2_strerror(static_cast<int>(n))));
          }
          if (n == 0) break;
          tls_out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
        }
        if (tls_out_.empty()) return absl::OkStatus();
      }
      ERR_clear_error();
      const int rc = SSL_write(ssl_, tls_out_.data() + tls_out_pos_,
                               static_cast<int>(tls_out_.size() - tls_out_pos_));
      if (rc > 0) {
        tls_out_pos_ += static_cast<size_t>(rc);
        continue;
      }
      const int error = SSL_get_error(ssl_, rc);
      if (error == SSL_ERROR_WANT_WRITE) {
        want_pollout_ = true;
        return absl::OkStatus();
      }
      if (error == SSL_ERROR_WANT_READ) return absl::OkStatus();
      return ConnectionLost(error == SSL_ERROR_SYSCALL && errno != 0
                                ? absl::StrCat("failed: ", strerror(errno))
                                : std::string("was closed"));
    }
  }

  // Reads what TLS has and feeds it to nghttp2.
  absl::Status Receive() {
    char buffer[kReadChunk];
    while (true) {
      ERR_clear_error();
      const int rc = SSL_read(ssl_, buffer, sizeof(buffer));
      if (rc > 0) {
        last_read_ = absl::Now();
        const ssize_t used = nghttp2_session_mem_recv(
            session_, reinterpret_cast<const uint8_t*>(buffer), static_cast<size_t>(rc));
        if (used < 0) {
          return absl::InternalError(absl::StrCat("HTTP/2 error from ", options_.target, ": ",
                                                  nghttp2_strerror(static_cast<int>(used))));
        }
        continue;
      }
      const int error = SSL_get_error(ssl_, rc);
      if (error == SSL_ERROR_WANT_READ) return absl::OkStatus();
      if (error == SSL_ERROR_WANT_WRITE) {
        want_pollout_ = true;
        return absl::OkStatus();
      }
      if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && errno == 0)) {
        return ConnectionLost("was closed");
      }
      if (error == SSL_ERROR_SYSCALL)
        return ConnectionLost(absl::StrCat("failed: ", strerror(errno)));
      return ConnectionLost(absl::StrCat("failed: TLS: ", OpenSslError()));
    }
  }

  absl::Status Loop() {
    last_read_ = absl::Now();
    while (true) {
      bool cancel = false;
      bool resume = false;
      {
        std::lock_guard lock(mu_);
        cancel = cancel_;
        if (body_deferred_ && (out_.size() > out_pos_ || writes_done_)) {
          body_deferred_ = false;
          resume = true;
        }
      }
      if (cancel && !stream_closed_) {
        FailStream(session_, absl::CancelledError("cancelled"));
      }
      if (resume && !stream_closed_) nghttp2_session_resume_data(session_, stream_id_);
      const absl::Time now = absl::Now();
      if (!stream_closed_ && now >= deadline_) {
        FailStream(session_, absl::DeadlineExceededError(
                                 absl::StrCat("deadline exceeded calling ", options_.target)));
      }
      if (options_.keepalive_time > absl::ZeroDuration()) {
        if (ping_outstanding_ && now >= ping_deadline_) {
          return absl::UnavailableError(
              absl::StrCat("keepalive ping to ", options_.target, " not answered within ",
                           absl::FormatDuration(options_.keepalive_timeout)));
        }
        if (!ping_outstanding_ && now >= last_read_ + options_.keepalive_time) {
          nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
          ping_outstanding_ = true;
          ping_deadline_ = now + options_.keepalive_timeout;
        }
      }
      want_pollout_ = false;
      if (absl::Status st = Flush(); !st.ok()) return st;
      if (stream_closed_) return absl::OkStatus();
      // Cancelled, past the deadline or a bad message: the RST_STREAM went
      // out if the socket took it; do not wait for a peer that may be gone.
      if (local_error_) return local_status_;
      if (goaway_ && stream_id_ > goaway_last_stream_) {
        return absl::UnavailableError(absl::StrCat(options_.target, " went away (GOAWAY ",
                                                   nghttp2_http2_strerror(goaway_code_),
                                                   ") before taking the call"));
      }
      if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
        return ConnectionLost("ended by HTTP/2");
      }
      absl::Time wake = deadline_;
      if (options_.keepalive_time > absl::ZeroDuration()) {
        wake = std::min(wake,
                        ping_outstanding_ ? ping_deadline_ : last_read_ + options_.keepalive_time);
      }
      // Bytes TLS has already decrypted do not make the socket readable.
      const int revents =
          SSL_pending(ssl_) > 0 ? POLLIN : PollSocket(POLLIN | (want_pollout_ ? POLLOUT : 0), wake);
      if (revents & (POLLIN | POLLHUP | POLLERR)) {
        if (absl::Status st = Receive(); !st.ok()) {
          if (stream_closed_) return absl::OkStatus();
          return st;
        }
      }
    }
  }

  void Run() {
    pthread_setname_np(pthread_self(), options_.thread_name.c_str());
    // OpenSSL writes with write(2): a peer that reset the connection must
    // give EPIPE here, not kill the process. SIGPIPE is sent to the writing
    // thread; blocked here, it stays pending and is dropped when the thread ends.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    absl::Status status = Execute();
    // A polite end of the connection: GOAWAY and TLS close_notify, not waited for.
    if (session_ != nullptr) {
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
      want_pollout_ = false;
      (void)Flush();
    }
    if (ssl_ != nullptr && status.code() != absl::StatusCode::kUnavailable) {
      SSL_shutdown(ssl_);
    }
    if (session_ != nullptr) nghttp2_session_del(session_);
    session_ = nullptr;
    if (ssl_ != nullptr) SSL_free(ssl_);
    ssl_ = nullptr;
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    in_.clear();
    in_.shrink_to_fit();
    // Before the call counts as finished, so that Finish() returns after it.
    if (handlers_.on_end) handlers_.on_end();
    {
      std::lock_guard lock(mu_);
      status_ = std::move(status);
      finished_ = true;
      out_.clear();
      out_pos_ = 0;
    }
    cv_.notify_all();
  }

  absl::Status Execute() {
    std::string host;
    std::string port;
    if (!ParseTarget(options_.target, &host, &port)) {
      return absl::InvalidArgumentError(
          absl::StrCat("server address '", options_.target, "' is not HOST:PORT"));
    }
    const absl::Time connect_deadline = std::min(deadline_, absl::Now() + options_.connect_timeout);
    if (absl::Status st = ConnectTcp(host, port, connect_deadline); !st.ok()) return st;
    if (absl::Status st = SetUpTls(host); !st.ok()) return st;
    if (absl::Status st = Handshake(connect_deadline); !st.ok()) {
      if (Cancelled()) return absl::CancelledError("cancelled");
      if (deadline_ <= absl::Now()) {
        return absl::DeadlineExceededError(absl::StrCat("deadline exceeded: ", st.message()));
      }
      return st;
    }
    if (absl::Status st = SetUpSession(host, port); !st.ok()) return st;
    if (handlers_.on_ready) handlers_.on_ready();
    absl::Status st = Loop();
    if (!st.ok()) return st;
    return stream_status_;
  }

  const ClientOptions options_;
  const std::string method_;
  const Handlers handlers_;
  const absl::Time deadline_;
  pthread_t thread_{};
  bool started_ = false;
  int event_fd_ = -1;

  // Shared with the caller's threads.
  std::mutex mu_;
  std::condition_variable cv_;
  std::string out_;  // framed messages not yet taken by nghttp2
  size_t out_pos_ = 0;
  bool body_deferred_ = false;
  bool writes_done_ = false;
  bool cancel_ = false;
  bool finished_ = false;
  absl::Status status_;

  // I/O thread only.
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  std::string tls_out_;
  size_t tls_out_pos_ = 0;
  bool want_pollout_ = false;
  std::string in_;
  std::string inflated_;
  int http_status_ = 0;
  std::string content_type_;
  std::string encoding_;
  bool has_grpc_status_ = false;
  std::string grpc_status_;
  std::string grpc_message_;
  bool local_error_ = false;
  absl::Status local_status_;
  bool stream_closed_ = false;
  absl::Status stream_status_;
  bool goaway_ = false;
  uint32_t goaway_code_ = 0;
  int32_t goaway_last_stream_ = 0;
  absl::Time last_read_;
  bool ping_outstanding_ = false;
  absl::Time ping_deadline_;
};

Call::Call(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Call::~Call() = default;

std::unique_ptr<Call> Call::Start(ClientOptions options, std::string method, Handlers handlers,
                                  absl::Time deadline) {
  auto impl =
      std::make_unique<Impl>(std::move(options), std::move(method), std::move(handlers), deadline);
  if (absl::Status st = impl->StartThread(); !st.ok()) impl->FailEarly(std::move(st));
  return std::unique_ptr<Call>(new Call(std::move(impl)));
}

bool Call::Write(std::string_view serialized) { return impl_->Write(serialized); }

bool Call::Write(const google::protobuf::MessageLite& message) {
  std::string serialized;
  if (!message.SerializeToString(&serialized)) return false;
  return impl_->Write(serialized);
}

void Call::WritesDone() { impl_->WritesDone(); }
void Call::Cancel() { impl_->Cancel(); }
absl::Status Call::Finish() { return impl_->Finish(); }

absl::Status UnaryCall(const ClientOptions& options, std::string method,
                       const google::protobuf::MessageLite& request,
                       google::protobuf::MessageLite* response, absl::Duration timeout) {
  std::string received;
  int count = 0;
  Call::Handlers handlers;
  handlers.on_message = [&](std::string_view message) {
    if (++count > 1) return absl::InternalError("more than one response to a unary call");
    received.assign(message);
    return absl::OkStatus();
  };
  std::unique_ptr<Call> call =
      Call::Start(options, std::move(method), std::move(handlers), absl::Now() + timeout);
  if (call->Write(request)) call->WritesDone();
  absl::Status status = call->Finish();
  if (!status.ok()) return status;
  if (count != 1) return absl::InternalError("the server sent no response message");
  if (!response->ParseFromString(received)) {
    return absl::InternalError("cannot parse the server's response");
  }
  return absl::OkStatus();
}

}  // namespace siper::agent::grpcwire
