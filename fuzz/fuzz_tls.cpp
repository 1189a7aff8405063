// The AMQPS listener's TLS engine (OpenSSL over memory BIOs), fed as a socket would feed it:
// in chunks of any size. The first byte picks what the rest is:
//   0: bytes from a client before any handshake (a plaintext client, garbage, a ClientHello);
//   1: raw bytes after a completed handshake (forged or broken records);
//   2: application data a real client encrypts: the engine must hand back exactly those bytes,
//      however the records are cut, and what it encrypts must reach the client unchanged.
// The engine must never crash or leak, and it must report a failure rather than go on.

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "amqp/tls_engine.h"

namespace {

// A server context with a throw-away self-signed P-256 certificate, made once.
SSL_CTX* server_context() {
  static SSL_CTX* context = [] {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("fuzz"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);  // as the listener
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) abort();
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
  }();
  return context;
}

SSL_CTX* client_context() {
  static SSL_CTX* context = SSL_CTX_new(TLS_client_method());  // verifies nothing: a test peer
  return context;
}

// A client over memory BIOs, talking to the engine directly.
struct Client {
  SSL* ssl = SSL_new(client_context());
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  Client() {
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
  }
  ~Client() { SSL_free(ssl); }
  std::string take_output() {
    std::string bytes;
    char buffer[4096];
    for (int n; (n = BIO_read(out, buffer, sizeof buffer)) > 0;) bytes.append(buffer, size_t(n));
    return bytes;
  }
  void give(const std::string& bytes) {
    if (!bytes.empty()) BIO_write(in, bytes.data(), int(bytes.size()));
  }
  std::string read_all() {
    std::string plain;
    char buffer[4096];
    for (int n; (n = SSL_read(ssl, buffer, sizeof buffer)) > 0;) plain.append(buffer, size_t(n));
    return plain;
  }
};

// Feeds `bytes` to the engine in chunks of `chunk`; what it decrypts goes to *plain. False
// once the engine reports a failure (it is not fed after that, as the session closes).
bool feed(warren::amqp::TlsEngine& engine, std::string_view bytes, size_t chunk,
          std::string* plain) {
  while (!bytes.empty()) {
    const size_t n = std::min(chunk, bytes.size());
    if (!engine.receive(bytes.substr(0, n), plain)) {
      if (engine.error().empty()) abort();  // a failure always says why (it is logged)
      return false;
    }
    bytes.remove_prefix(n);
  }
  return true;
}

bool handshake(warren::amqp::TlsEngine& engine, Client& client) {
  std::string ignored;
  for (int round = 0; round < 8; ++round) {
    SSL_do_handshake(client.ssl);
    if (!engine.receive(client.take_output(), &ignored)) return false;
    std::string reply;
    engine.take_output(&reply);
    client.give(reply);
    if (engine.handshake_done() && SSL_is_init_finished(client.ssl)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int mode = data[0] % 3;
  const size_t chunk = size_t(data[1] % 64) + 1;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  warren::amqp::TlsEngine engine(server_context());
  std::string plain, output;
  if (mode == 0) {
    feed(engine, rest, chunk, &plain);
    engine.take_output(&output);  // alerts or a ServerHello
    if (!engine.handshake_done() && !plain.empty()) abort();  // no data before a handshake
    return 0;
  }
  Client client;
  if (!handshake(engine, client)) abort();  // a real client always completes it
  if (mode == 1) {
    feed(engine, rest, chunk, &plain);
    return 0;
  }
  if (!rest.empty() && SSL_write(client.ssl, rest.data(), int(rest.size())) <= 0) abort();
  if (!feed(engine, client.take_output(), chunk, &plain) || plain != rest) abort();
  if (!engine.send(rest)) abort();
  engine.take_output(&output);
  client.give(output);
  if (client.read_all() != rest) abort();
  return 0;
}
