#include "storage/op_codec.h"

#include <memory>

#include "storage/keys.h"
#include "storage/records.h"

namespace warren::storage {
namespace {

constexpr uint32_t kNoMessage = UINT32_MAX;
constexpr uint8_t kLastKind = uint8_t(Op::Kind::dedup_insert);
constexpr uint8_t kMaxSubset = 2;

void put_u64(std::string& out, uint64_t v) {
  char b[8];
  put_be64(b, v);
  out.append(b, 8);
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char(v >> (24 - 8 * i)));
}
void put_bytes(std::string& out, std::string_view s) {
  put_u32(out, uint32_t(s.size()));
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t& v) {
    if (in_.empty()) return false;
    v = uint8_t(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool u32(uint32_t& v) {
    if (in_.size() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | uint8_t(in_[i]);
    in_.remove_prefix(4);
    return true;
  }
  bool u64(uint64_t& v) {
    if (in_.size() < 8) return false;
    v = get_be64(in_.data());
    in_.remove_prefix(8);
    return true;
  }
  bool bytes(uint32_t n, std::string_view& v) {
    if (in_.size() < n) return false;
    v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool string(std::string& v) {
    uint32_t n;
    std::string_view s;
    if (!u32(n) || !bytes(n, s)) return false;
    v = s;
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace

void encode_ops(const std::vector<Op>& ops, uint8_t subset, std::string& out) {
  out.clear();
  out.push_back(char(subset));
  put_u32(out, uint32_t(ops.size()));
  for (const Op& op : ops) {
    out.push_back(char(op.kind));
    out.push_back(char(op.db));
    put_u64(out, op.queue_id);
    put_u64(out, op.seq);
    put_u64(out, op.seq_end);
    put_u64(out, op.bytes);
    put_bytes(out, op.key);
    put_bytes(out, op.value);
    if (!op.message) {
      put_u32(out, kNoMessage);
      continue;
    }
    size_t n = encoded_size(*op.message);
    put_u32(out, uint32_t(n));
    out.resize(out.size() + n);
    encode_into(*op.message, out.data() + out.size() - n);
  }
}

std::optional<OpBatch> decode_ops(std::string_view bytes) {
  Reader in(bytes);
  OpBatch batch;
  uint32_t count;
  if (!in.u8(batch.subset) || batch.subset > kMaxSubset || !in.u32(count)) return std::nullopt;
  for (uint32_t i = 0; i < count; ++i) {
    Op op;
    uint8_t kind, db;
    uint32_t message_size;
    if (!in.u8(kind) || kind > kLastKind || !in.u8(db) || db >= kDbCount) return std::nullopt;
    op.kind = Op::Kind(kind);
    op.db = Db(db);
    if (!in.u64(op.queue_id) || !in.u64(op.seq) || !in.u64(op.seq_end) || !in.u64(op.bytes) ||
        !in.string(op.key) || !in.string(op.value) || !in.u32(message_size))
      return std::nullopt;
    if (message_size != kNoMessage) {
      std::string_view encoded;
      if (!in.bytes(message_size, encoded)) return std::nullopt;
      auto message = decode_message(encoded);
      if (!message) return std::nullopt;
      op.message = std::make_shared<const MessageData>(std::move(*message));
    }
    // Message ops cannot be applied without their message.
    bool needs_message = op.kind == Op::Kind::put_message || op.kind == Op::Kind::replace_message;
    if (needs_message && !op.message) return std::nullopt;
    batch.ops.push_back(std::move(op));
  }
  if (!in.done()) return std::nullopt;
  return batch;
}

}  // namespace warren::storage
