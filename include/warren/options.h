// How a broker keeps its data. Every field states its default and what it costs on a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace warren {

enum class Durability {
  // Every commit is on stable storage before any confirm it carries is sent. A kill -9 or
  // a power loss never loses a confirmed persistent message. Costs one synced journal
  // write per group commit, and an LMDB sync every 256 commits
  // (docs/storage-format.md, "The commit journal").
  fsync,
  // Commits are not synced (LMDB's MDB_NOSYNC). A process crash loses nothing the OS
  // has accepted; a power loss may lose recent work and, as LMDB warns for MDB_NOSYNC,
  // can leave the store damaged (the file system may write a commit's pages out of
  // order). For tests and for users who accept that trade.
  nosync,
  // A private store in memory-backed temporary space, removed on close. Nothing survives
  // the broker. For test fixtures.
  in_memory,
};

struct BrokerOptions {
  // The directory holding the store; created if missing. Ignored for in_memory.
  std::string data_dir = {};
  Durability durability = Durability::fsync;
  // The store's map starts at this size and doubles whenever it fills.
  uint64_t initial_map_size = uint64_t{64} << 20;
  // The map never grows past this. At the cap (or when the disk is full) publishes are
  // refused (nack to a confirming publisher) while consumers keep being served.
  uint64_t max_map_size = uint64_t{1} << 40;
  // Largest accepted message body, as RabbitMQ's max_message_size (128 MiB).
  uint64_t max_message_size = 134217728;
  // Bytes of published messages waiting for the writer before in-process publishers are
  // held back (and warrend stops reading publishing connections). Bounds the heap when
  // publishers outrun the disk.
  uint64_t publish_backlog_limit = uint64_t{64} << 20;
  // Damage found at open that would lose confirmed commits (a damaged journal, LMDB ahead
  // of its journal) makes open() fail with a corruption error saying what it found. Set
  // this to open such a store anyway, as LMDB holds it: what was lost is logged.
  bool accept_data_loss = false;
};

}  // namespace warren
