#include "storage/op_codec.h"

#include <cstring>
#include <memory>

#include "storage/keys.h"
#include "storage/records.h"

namespace warren::storage {
namespace {

constexpr uint32_t kNoMessage = UINT32_MAX;
constexpr uint8_t kLastKind = uint8_t(Op::Kind::dedup_insert);
constexpr uint8_t kMaxSubset = 2;

constexpr size_t kOpFraming = 2 + 4 * 8 + 3 * 4;  // kind, db, four u64s, three lengths

char* put_u32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) *p++ = char(v >> (24 - 8 * i));
  return p;
}
char* put_u64(char* p, uint64_t v) {
  put_be64(p, v);
  return p + 8;
}
char* put_bytes(char* p, std::string_view s) {
  p = put_u32(p, uint32_t(s.size()));
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
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

size_t encoded_ops_size(const std::vector<Op>& ops) {
  size_t n = 1 + 4;
  for (const Op& op : ops)
    n += kOpFraming + op.key.size() + op.value.size() + (op.message ? encoded_size(*op.message) : 0);
  return n;
}

void encode_ops_into(const std::vector<Op>& ops, uint8_t subset, char* p) {
  *p++ = char(subset);
  p = put_u32(p, uint32_t(ops.size()));
  for (const Op& op : ops) {
    *p++ = char(op.kind);
    *p++ = char(op.db);
    for (uint64_t v : {op.queue_id, op.seq, op.seq_end, op.bytes}) p = put_u64(p, v);
    p = put_bytes(p, op.key);
    p = put_bytes(p, op.value);
    if (!op.message) {
      p = put_u32(p, kNoMessage);
      continue;
    }
    size_t n = encoded_size(*op.message);
    p = put_u32(p, uint32_t(n));
    encode_into(*op.message, p);
    p += n;
  }
}

std::string encode_ops(const std::vector<Op>& ops, uint8_t subset) {
  std::string out(encoded_ops_size(ops), '\0');
  encode_ops_into(ops, subset, out.data());
  return out;
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
