// The journal's record of one transaction: the ops the store applied, in order, and
// which of them it applied (Store::write may commit a batch in parts). Replaying a
// record on the state the transaction started from gives the state it committed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/store.h"

namespace warren::storage {

struct OpBatch {
  uint8_t subset = 0;  // Store::Subset
  std::vector<Op> ops;
};

size_t encoded_ops_size(const std::vector<Op>& ops);
// Writes exactly encoded_ops_size(ops) bytes to out.
void encode_ops_into(const std::vector<Op>& ops, uint8_t subset, char* out);
std::string encode_ops(const std::vector<Op>& ops, uint8_t subset);
// Refuses anything that encode_ops could not have written.
std::optional<OpBatch> decode_ops(std::string_view bytes);

}  // namespace warren::storage
