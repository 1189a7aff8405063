// Big-endian byte writer and bounds-checked reader. The reader never throws and never
// reads past its input: a short or malformed input sets failed() and yields zeros.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace warren::wire {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(char(v)); }
  void u16(uint16_t v) { put_be(v, 2); }
  void u32(uint32_t v) { put_be(v, 4); }
  void u64(uint64_t v) { put_be(v, 8); }
  void bytes(std::string_view b) { out_.append(b); }
  // shortstr: one length octet; callers check that s fits (<= 255).
  void shortstr(std::string_view s) {
    u8(uint8_t(s.size()));
    bytes(s);
  }
  void longstr(std::string_view s) {
    u32(uint32_t(s.size()));
    bytes(s);
  }
  size_t size() const { return out_.size(); }
  // Writes v big-endian at an earlier position (for length prefixes known afterwards).
  void patch_u32(size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) out_[at + i] = char(v >> (24 - 8 * i));
  }
  std::string& out() { return out_; }

 private:
  void put_be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(char(v >> (8 * i)));
  }
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint8_t u8() { return uint8_t(get_be(1)); }
  uint16_t u16() { return uint16_t(get_be(2)); }
  uint32_t u32() { return uint32_t(get_be(4)); }
  uint64_t u64() { return get_be(8); }
  std::string_view bytes(size_t n) {
    if (failed_ || n > in_.size() - pos_) return fail_view();
    auto v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view shortstr() { return bytes(u8()); }
  std::string_view longstr() { return bytes(u32()); }
  std::string_view rest() { return bytes(remaining()); }
  size_t remaining() const { return failed_ ? 0 : in_.size() - pos_; }
  bool failed() const { return failed_; }
  bool at_end() const { return !failed_ && pos_ == in_.size(); }
  void fail() { failed_ = true; }

 private:
  uint64_t get_be(size_t n) {
    if (failed_ || n > in_.size() - pos_) {
      failed_ = true;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | uint8_t(in_[pos_ + i]);
    pos_ += n;
    return v;
  }
  std::string_view fail_view() {
    failed_ = true;
    return {};
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace warren::wire
