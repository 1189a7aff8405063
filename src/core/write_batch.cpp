#include "core/write_batch.h"

#include "core/engine.h"

namespace warren::core {

WriteBatch::WriteBatch(Engine& engine) : engine_(engine) {
  OpenBatch& open = engine_.open_batch();
  outermost_ = open.handles++ == 0;
}

WriteBatch::~WriteBatch() {
  OpenBatch& open = engine_.open_batch();
  --open.handles;
  if (outermost_) engine_.submit_open_batch();
}

uint64_t WriteBatch::add(storage::Op op) {
  OpenBatch& open = engine_.open_batch();
  // Nothing else submits while a batch is open, so the next id is this batch's.
  if (open.ops.empty()) open.id = engine_.writer().next_id();
  open.ops.push_back(std::move(op));
  return open.id;
}

uint64_t WriteBatch::id() const { return engine_.open_batch().id; }

uint64_t WriteBatch::upcoming_id() const {
  uint64_t open = id();
  return open ? open : engine_.writer().next_id();
}

}  // namespace warren::core
