// Where a queue's ready messages are, as positions only (invariant D4: bodies stay in the
// store). A queue's messages are numbered by sequence in publish order; the positions are:
//
//   - the stream [read, next): messages never taken yet. The store holds most of them; some
//     numbers are gaps (a publish whose commit failed) and some are held out of it:
//     `delayed` (waiting for a retry time, known after a restart) and `removing` (taken out
//     ahead of the read position, e.g. expired, until the commit deleting them lands);
//   - `returned`: messages taken and given back (requeued), all below `read`, served first,
//     oldest first, so a requeued message goes back to its original place;
//   - `delayed`: returned messages waiting for their retry time (x-requeue-delay).
//
// ready() counts the returned ones plus the stream's messages that exist and are not held;
// it cannot be derived (the stream's gaps are not in memory), so every transition keeps it.
// A transition that would take a count below zero is a bug: checked builds abort on it.
// No I/O here: the queue reads the store and tells the positions what it found.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "storage/store.h"

namespace warren::core {

class QueuePositions {
 public:
  // A message the positions hold by number: where it is stored and its body's size.
  struct Held {
    storage::Db db = storage::Db::messages;
    uint64_t bytes = 0;
    bool operator==(const Held&) const = default;
  };

  // --- recovery ---------------------------------------------------------------------
  // The store holds messages [first, next), `count` of them with `bytes` of bodies.
  void recover(uint64_t first, uint64_t next, uint64_t count, uint64_t bytes);
  // A stored message waiting for its retry time: not ready until it comes.
  void recover_delayed(uint64_t seq, Held held);

  // --- counts -----------------------------------------------------------------------
  uint64_t ready() const { return ready_; }
  uint64_t ready_bytes() const { return ready_bytes_; }
  uint64_t delayed() const { return delayed_.size(); }
  uint64_t next_seq() const { return next_; }
  uint64_t read_position() const { return read_; }
  bool has_removing() const { return !removing_.empty(); }
  const std::map<uint64_t, Held>& returned() const { return returned_; }

  // --- publishing -------------------------------------------------------------------
  // A new ready message at the end; returns its sequence number.
  uint64_t append(uint64_t bytes);
  // A published message whose commit failed was never stored: no longer ready, wherever
  // it is (unless it is out with a consumer, whose ack will find nothing).
  void never_stored(uint64_t seq, uint64_t bytes);

  // --- reading, in queue order ------------------------------------------------------
  // The oldest returned message, taken: no longer ready.
  std::optional<std::pair<uint64_t, Held>> pop_returned();
  // Whether the stream may still hold ready messages.
  bool stream_has_ready() const { return ready_ > returned_.size() && read_ < next_; }
  // A stream number that is not ready to be read (delayed, or being removed).
  bool held_in_stream(uint64_t seq) const { return delayed_.count(seq) || removing_.count(seq); }
  // The stream holds nothing ready below `seq`: reading goes on from there.
  void skip_to(uint64_t seq);
  // The stream message `seq` (at or after read) is taken: no longer ready.
  void take_from_stream(uint64_t seq, uint64_t bytes);
  // The same, for a record that could not be read: its size is not known.
  void take_unreadable(uint64_t seq);

  // --- giving back ------------------------------------------------------------------
  // A taken message is ready again at its original position.
  void give_back(uint64_t seq, Held held);
  // Undoes the last take (nothing was delivered): a stream message is unread again.
  void unread(uint64_t seq, Held held, bool was_returned);
  // A taken message waits for its retry time before it is ready again.
  void delay(uint64_t seq, Held held);
  // Its retry time came (or it leaves the queue): no longer waiting. nullopt if it was not.
  std::optional<Held> end_delay(uint64_t seq);
  bool is_delayed(uint64_t seq) const { return delayed_.count(seq) > 0; }

  // --- removing a ready message out of order (expiry) ---------------------------------
  bool is_ready(uint64_t seq) const;
  // Removes ready message `seq`; a stream message is held out until `commit` (the one
  // deleting it) lands: call removed_through() then.
  void remove_ready(uint64_t seq, uint64_t bytes, uint64_t commit);
  // Commits up to `commit` have landed: the messages they deleted are gone from the store.
  void removed_through(uint64_t commit);

  // --- purge ------------------------------------------------------------------------
  // Every ready message goes: returned ones by number, stream ones as ranges that step
  // around delayed messages (they stay, as unacknowledged ones do). Returns what to delete.
  struct Purged {
    uint64_t count = 0;
    std::vector<std::pair<uint64_t, Held>> returned;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [from, to)
  };
  Purged purge();
  // Everything goes (the queue is deleted).
  void clear();

  // The invariants that can be checked without the store; checked builds call it after
  // every transition.
  bool consistent() const;

 private:
  void count_out(uint64_t bytes);
  void count_in(uint64_t bytes) {
    ++ready_;
    ready_bytes_ += bytes;
  }
  void check() const;

  uint64_t next_ = 1;  // the next publish gets this number
  uint64_t read_ = 1;  // the first stream message never taken
  uint64_t ready_ = 0;
  uint64_t ready_bytes_ = 0;
  std::map<uint64_t, Held> returned_;      // all below read_
  std::map<uint64_t, Held> delayed_;       // not ready; below read_ unless recovered
  std::map<uint64_t, uint64_t> removing_;  // seq -> the commit deleting it
  bool bytes_known_ = true;  // false once an unreadable record left with an unknown size
};

}  // namespace warren::core
