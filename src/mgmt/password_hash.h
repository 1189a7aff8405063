// Passwords as RabbitMQ stores them (rabbit_password_hashing_sha256): base64 of a 4-byte
// random salt followed by SHA-256(salt + password). Definitions files carry this form.
#pragma once

#include <string>
#include <string_view>

namespace warren::mgmt {

std::string hash_password(std::string_view password);
// Whether `password` hashes to `password_hash` (the comparison takes the same time either way).
bool password_matches(std::string_view password, std::string_view password_hash);

}  // namespace warren::mgmt
