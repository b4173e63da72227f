#!/usr/bin/env python3
"""Server CPU per batch by component, from two `siper_loadgen --perf` profiles.

Usage (docs/performance.md, "Per-batch cost"):
  perf script -i SMALL.perf -F comm,tid,ip,sym > small.txt   # e.g. --rate 10000: 20 a batch
  perf script -i LARGE.perf -F comm,tid,ip,sym > large.txt   # e.g. max mode: 500 a batch
  perf_per_batch.py small.txt US_PER_EVENT_SMALL 20 large.txt US_PER_EVENT_LARGE 500

Each sample goes to the first group whose test matches its call chain; a group's CPU per
event is its share times the run's server CPU per event (the loadgen prints it), and its
cost per batch is the fit e + c / batch through the two runs. Prints a Markdown table.
"""
import sys, re, collections
def load(path):
    samples=[]; cur=None
    for line in open(path):
        if not line.strip():
            if cur: samples.append(cur); cur=None
            continue
        if not line.startswith((' ','\t')):
            if cur: samples.append(cur)
            m=re.match(r'\s*(\S.*?)\s+(\d+)',line); cur=[m.group(1),[]]
        else:
            p=line.strip().split(None,1)
            if len(p)==2: cur[1].append(re.sub(r'\s+\(.*\)$','',p[1]))
    if cur: samples.append(cur)
    return samples
rules=[
 ('field-count merges (RocksDB MergeCF, per commit group)', lambda c,j,f6: 'MergeCF' in j),
 ('records, index and postings into the memtable (PutCF)', lambda c,j,f6: 'PutCF' in j),
 ('WAL write, CRC and fdatasync', lambda c,j,f6: 'WriteToWAL' in j or 'fdatasync' in j or 'SyncInternal' in j),
 ('dedup MultiGet', lambda c,j,f6: 'MultiGet' in j),
 ('RocksDB flush/compaction threads', lambda c,j,f6: c.startswith('rocksdb')),
 ('other RocksDB (batch build, iterate, free)', lambda c,j,f6: 'rocksdb::' in j),
 ('kernel: scheduler, futex wait/wake (context switches)', lambda c,j,f6: any(k in x for x in f6 for k in ('finish_task_switch','__schedule','futex','try_to_wake_up','_raw_spin_unlock_irq','pthread_cond','__lll_lock'))),
 ('kernel: TCP send/receive, epoll', lambda c,j,f6: any(k in x for x in f6 for k in ('tcp_','sendmsg','recvmsg','sock_','ip_','net_rx','skb','epoll'))),
 ('TLS (AES-GCM, SSL)', lambda c,j,f6: any(k in x for x in f6 for k in ('ssl','SSL','aes','gcm','tsi_','EVP_'))),
 ('gzip (inflate)', lambda c,j,f6: any(k in x for x in f6 for k in ('inflate','crc32_z','adler32'))),
 ('decode + match (rules::, Hyperscan)', lambda c,j,f6: any(k in x for x in f6 for k in ('rules::','hs_','avx2_hs'))),
 ('gRPC core (other)', lambda c,j,f6: c.startswith('nexting') or c.startswith('grpc') or any(k in x for x in f6 for k in ('grpc','gpr_'))),
 ('protobuf parse/serialize/free', lambda c,j,f6: any(k in x for x in f6 for k in ('google::protobuf','siper::v1::'))),
 ('malloc/free, page faults', lambda c,j,f6: any(k in x for x in f6 for k in ('malloc','free','operator new','operator delete','je_','clear_page','page_fault'))),
 ('SHA-256 (chain digests)', lambda c,j,f6: any(k in x for x in f6 for k in ('sha256','Sha256','SHA256'))),
]
def classify(s):
    c,fr=s; j=' '.join(fr); f6=fr[:6]
    for name,fn in rules:
        if fn(c,j,f6): return name
    return 'other (ingest, storage encoding, memcpy, ...)'
args=sys.argv[1:]
a=load(args[0]); ua=float(args[1]); ba=float(args[2])
b=load(args[3]); ub=float(args[4]); bb=float(args[5])
ca=collections.Counter(classify(s) for s in a); cb=collections.Counter(classify(s) for s in b)
names=[r[0] for r in rules]+['other (ingest, storage encoding, memcpy, ...)']
print(f'| component | share at {ba:.0f}/batch | share at {bb:.0f}/batch | µs/event at {ba:.0f} | µs/event at {bb:.0f} | per batch (fit) |')
print('|---|---|---|---|---|---|')
tot=0
for n in names:
    sa=ca[n]/len(a); sb=cb[n]/len(b); xa=sa*ua; xb=sb*ub
    c=(xa-xb)/(1/ba-1/bb); tot+=c
    print(f'| {n} | {100*sa:.1f} % | {100*sb:.1f} % | {xa:.1f} | {xb:.1f} | {c:.0f} µs |')
print(f'| **all** | {len(a)} samples | {len(b)} samples | {ua:.1f} | {ub:.1f} | {tot:.0f} µs |')
