// The AMQP listener: accepts sockets and runs one Session per client, which only moves
// bytes between the socket and its Connection, keeps heartbeats, and stops reading from a
// client that does not read what it is sent.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "amqp/connection.h"

namespace warren::amqp {

struct ListenOptions {
  std::vector<std::string> addresses{"127.0.0.1", "::1"};
  uint16_t port = 5672;  // 0: pick a free port (the same one on every address)
};

// The AMQPS listener's certificate and how clients' certificates are checked.
struct TlsOptions {
  std::string cert_file;              // PEM, the server's certificate (chain)
  std::string key_file;               // PEM, its private key
  std::string ca_file;                // PEM, the CAs a client certificate must come from
  bool verify_peer = false;           // ask for a client certificate and check it
  bool fail_if_no_peer_cert = false;  // ...and refuse clients without one
};

class Server {
 public:
  Server(asio::io_context& io, core::Engine& engine, ServerConfig config);
  ~Server();
  // Binds and starts accepting. Fails if no address can be bound.
  Status listen(const ListenOptions& options);
  uint16_t port() const { return port_; }
  // An AMQPS listener (TLS 1.2 and 1.3 only) on the same addresses. A client certificate,
  // when verified, offers the EXTERNAL mechanism (its common name is the user).
  Status listen_tls(const ListenOptions& options, const TlsOptions& tls);
  uint16_t tls_port() const { return tls_port_; }
  // Stops accepting and closes every connection (connection.close 320 first).
  void stop();
  // A graceful stop: stops accepting and reading, waits until everything the clients sent
  // is committed and settled (every publish read is confirmed or nacked), then closes each
  // connection with connection.close 320. Calls `done` once every connection is gone, or
  // `deadline` after it began if that takes longer (a hung disk, a client that never
  // answers).
  void shutdown(std::chrono::steady_clock::duration deadline, std::function<void()> done);
  // Drops every connection at once, releasing their broker state. For when the loop has
  // stopped: must run before the engine shuts down.
  void abandon_all();

  class Session;

 private:
  void accept(asio::ip::tcp::acceptor& acceptor, bool tls);
  // Binds every address on one port (0: the first picks it); the port, or the failure.
  Result<uint16_t> bind_all(const ListenOptions& options, bool tls);
  void close_acceptors();
  // Waits until no commit is pending and no session is working off input it already read.
  void settle_then(std::function<void()> next);
  void session_gone();

  asio::io_context& io_;
  core::Engine& engine_;
  ServerConfig config_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::set<std::shared_ptr<Session>> sessions_;
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
  std::unique_ptr<asio::ssl::context> tls_context_;
  bool stopping_ = false;
  std::function<void()> on_all_gone_;
  bool out_of_descriptors_ = false;  // accept failed with EMFILE; logged once
  std::unique_ptr<asio::steady_timer> shutdown_deadline_;
  // Every session reads into this buffer and copies out what it got before the next read:
  // they all run on the one thread of io_.
  std::vector<char> read_buffer_ = std::vector<char>(65536);
};

}  // namespace warren::amqp
