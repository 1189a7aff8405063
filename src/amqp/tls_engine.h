// The server side of TLS over memory: ciphertext in, plaintext out, and back, with no I/O of
// its own (OpenSSL with memory BIOs). The session reads whatever has arrived on its socket,
// as on a plain connection, and hands it here in one go: a client that sends each frame as
// its own record costs one wake-up per read, not one per record.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>

namespace warren::amqp {

class TlsEngine {
 public:
  explicit TlsEngine(SSL_CTX* context);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Ciphertext from the client; what it decrypts to is appended to *plain. False on a TLS
  // failure (error() says what) or when the client closed the TLS session.
  bool receive(std::string_view ciphertext, std::string* plain);
  // Plaintext for the client, encrypted into the output.
  bool send(std::string_view plain);
  // Ciphertext waiting for the socket (handshake messages, records, alerts), appended.
  void take_output(std::string* out);
  bool handshake_done() const { return handshake_done_; }
  // The common name of the client's certificate, if it sent one that verified.
  std::string peer_common_name() const;
  const std::string& error() const { return error_; }

 private:
  bool failed(int result);
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  bool handshake_done_ = false;
  std::string error_;
};

}  // namespace warren::amqp
