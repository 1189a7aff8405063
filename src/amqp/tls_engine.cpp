#include "amqp/tls_engine.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <array>

namespace warren::amqp {

TlsEngine::TlsEngine(SSL_CTX* context) : ssl_(SSL_new(context)) {
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_accept_state(ssl_);
}

TlsEngine::~TlsEngine() { SSL_free(ssl_); }

// Whether `result` of an SSL call is a failure (not just a wish for more input).
bool TlsEngine::failed(int result) {
  const int code = SSL_get_error(ssl_, result);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return false;
  if (code == SSL_ERROR_ZERO_RETURN) {
    error_ = "the client closed the TLS session";
    return true;
  }
  unsigned long e = ERR_get_error();
  char text[256] = "TLS error";
  if (e != 0) ERR_error_string_n(e, text, sizeof text);
  error_ = text;
  ERR_clear_error();
  return true;
}

bool TlsEngine::receive(std::string_view ciphertext, std::string* plain) {
  if (!ciphertext.empty() && BIO_write(in_, ciphertext.data(), int(ciphertext.size())) <= 0) {
    error_ = "cannot buffer TLS input";
    return false;
  }
  if (!handshake_done_) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) return !failed(r);
    handshake_done_ = true;
  }
  std::array<char, 16384> buffer;
  for (;;) {
    int n = SSL_read(ssl_, buffer.data(), int(buffer.size()));
    if (n > 0) {
      plain->append(buffer.data(), size_t(n));
      continue;
    }
    return !failed(n);
  }
}

bool TlsEngine::send(std::string_view plain) {
  while (!plain.empty()) {
    int n = SSL_write(ssl_, plain.data(), int(plain.size()));
    if (n <= 0) {
      failed(n);
      return false;
    }
    plain.remove_prefix(size_t(n));
  }
  return true;
}

void TlsEngine::take_output(std::string* out) {
  std::array<char, 16384> buffer;
  for (;;) {
    int n = BIO_read(out_, buffer.data(), int(buffer.size()));
    if (n <= 0) return;
    out->append(buffer.data(), size_t(n));
  }
}

std::string TlsEngine::peer_common_name() const {
  if (SSL_get_verify_result(ssl_) != X509_V_OK) return {};
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (!cert) return {};
  char name[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
  X509_free(cert);
  return n > 0 ? std::string(name, size_t(n)) : std::string();
}

}  // namespace warren::amqp
