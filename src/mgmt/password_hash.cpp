#include "mgmt/password_hash.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "mgmt/json_fields.h"

namespace warren::mgmt {

namespace {

std::string salted_digest(std::string_view salt, std::string_view password) {
  std::string input(salt);
  input += password;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return std::string(salt) + std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

}  // namespace

std::string hash_password(std::string_view password) {
  unsigned char salt[4];
  if (RAND_bytes(salt, sizeof salt) != 1) return {};
  return encode_base64(
      salted_digest(std::string_view(reinterpret_cast<const char*>(salt), sizeof salt), password));
}

bool password_matches(std::string_view password, std::string_view password_hash) {
  auto stored = decode_base64(password_hash);
  if (!stored || stored->size() != 4 + SHA256_DIGEST_LENGTH) return false;
  std::string computed = salted_digest(std::string_view(*stored).substr(0, 4), password);
  return CRYPTO_memcmp(computed.data(), stored->data(), computed.size()) == 0;
}

}  // namespace warren::mgmt
