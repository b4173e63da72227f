// Resident pages of siper-agent's own executable that only start-up used.
#pragma once

#include <cstddef>

namespace siper::agent {

// Unmaps (madvise MADV_DONTNEED) the resident pages of this process's own
// executable (/proc/self/exe) in mappings that are not writable and hold no
// page copied on write (smaps `Anonymous: 0 kB`): its code and constants,
// never its data or its relocated read-only data (RELRO), whose contents
// exist only in this process. Those pages stay in the kernel's page cache;
// one used again is mapped back by a minor fault. What start-up alone used
// (static initialisers, configuration, TLS set-up, the kernel's fault-around
// neighbours) then no longer counts in the agent's resident memory and can
// be reclaimed by the kernel like any unmapped file cache. Shared libraries
// are left alone (their pages serve other processes too). Returns the KiB
// that were resident in the mappings it unmapped (0 when there were none or
// /proc is not readable).
size_t ReleaseExecutableFilePages();

}  // namespace siper::agent
