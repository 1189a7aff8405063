// What commits together. A core operation that writes opens a WriteBatch, passes it down
// (enqueue, discard, dead-lettering, settling take it as a parameter), and everything added
// to it lands in one commit: after any crash, all of it is stored or none of it. The commit
// id is known from the first op on, so the in-memory state an op changes can record the
// commit that makes it durable before the commit is even submitted.
//
// Batches nest: one opened while another is open joins it (a channel error that closes a
// connection in the middle of a publish, say), and the outermost submits everything when
// it ends. Only the thread holding the loop token opens batches, so nothing here locks.
#pragma once

#include <cstdint>
#include <vector>

#include "storage/store.h"

namespace warren::core {

class Engine;

class WriteBatch {
 public:
  explicit WriteBatch(Engine& engine);
  ~WriteBatch();  // the outermost one submits what was added
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  // Adds an op; returns the id of the commit that will carry it.
  uint64_t add(storage::Op op);
  // The commit that carries what was added so far; 0 while nothing was.
  uint64_t id() const;
  // The commit this batch will be, for state recorded before the op that needs it is
  // added (the batch must then add one).
  uint64_t upcoming_id() const;

 private:
  Engine& engine_;
  bool outermost_;
};

// The engine's open batch, which every WriteBatch handle adds to.
struct OpenBatch {
  std::vector<storage::Op> ops;
  uint64_t id = 0;
  int handles = 0;
};

}  // namespace warren::core
