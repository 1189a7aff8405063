#include "amqp/server.h"

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <array>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <chrono>

#include "amqp/tls_engine.h"
#include "common/log.h"

namespace warren::amqp {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kAcceptRetry{200};
// How long a cleanly closed connection waits for the client to close its end (RabbitMQ's
// closing timeout).
constexpr std::chrono::seconds kLinger{30};

// A session reads and writes its socket; on the AMQPS port the bytes pass through a TLS
// engine on the way (amqp/tls_engine.h), and everything else is the same.
class Server::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, tcp::socket socket, std::string peer, bool loopback,
          asio::ssl::context* tls)
      : server_(server),
        socket_(std::move(socket)),
        conn_(server.engine_, server.config_, peer, loopback),
        timer_(socket_.get_executor()),
        peer_(std::move(peer)) {
    if (tls) tls_ = std::make_unique<TlsEngine>(tls->native_handle());
    std::error_code ignored;
    const auto remote = socket_.remote_endpoint(ignored), local = socket_.local_endpoint(ignored);
    conn_.set_endpoints(remote.address().to_string(), remote.port(), local.address().to_string(),
                        local.port());
  }

  void start() { serve(); }

  void serve() {
    std::error_code ignored;
    socket_.non_blocking(true, ignored);  // read() reads only what has arrived
    conn_.set_output_listener([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->schedule_flush();
    });
    // Posted: the engine calls it in the middle of applying a commit's outcome.
    conn_.set_resume_listener([weak = weak_from_this()] {
      if (auto self = weak.lock())
        asio::post(self->socket_.get_executor(), [self] {
          if (self->closed_) return;
          self->conn_.feed(self->in_);
          self->flush();
          if (!self->conn_.should_close()) self->read();
        });
    });
    last_input_ = last_output_ = Clock::now();
    read();
    tick();
  }

  void shut_down() {
    conn_.close_for_shutdown();
    flush();
  }
  // Reads nothing more from the client until it is told to close (what was read is still
  // worked off).
  void stop_reading() { draining_ = true; }
  // Whether it still has input to work off once a reply's commit lands.
  bool busy() const { return conn_.awaiting_commits(); }

  void abandon() { close(); }

 private:
  bool may_read() const {
    if (reading_ || closed_ || conn_.should_close()) return false;
    if (conn_.reading_paused()) return false;  // resumed when the output drains
    return !(draining_ && conn_.open());       // only a close-ok is read once shutdown began
  }

  // Waits for input. Reading happens in read_available(), into the server's one buffer: a
  // read buffer per connection would cost 64 KiB for each idle client.
  void read() {
    if (!may_read()) return;
    reading_ = true;
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](std::error_code ec) {
      self->reading_ = false;
      if (ec)
        self->close();
      else
        self->read_available();
    });
  }

  void take_input(std::string_view data) {
    last_input_ = Clock::now();
    if (tls_) {
      if (!tls_->receive(data, &in_)) return tls_failed();
      if (!tls_->handshake_done()) return flush();  // its replies go out, more is read
      if (!tls_identified_) {  // before the AMQP header is read: it decides the mechanisms
        tls_identified_ = true;
        conn_.set_tls(tls_->peer_common_name());
      }
    } else {
      in_.append(data);
    }
    conn_.feed(in_);
    if (conn_.refusing()) answer_refusal_later();
    flush();  // which may start waiting for input itself
  }

  // Reads and works off what has arrived, a few buffers' worth (as asio's own reads try
  // before waiting, so a busy publisher costs no extra wake-up), then waits for more.
  void read_available() {
    std::vector<char>& buffer = server_.read_buffer_;
    for (int round = 0; round < 4 && may_read(); ++round) {
      std::error_code ec;
      size_t n = socket_.read_some(asio::buffer(buffer), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) {
        close();
        return;
      }
      take_input(std::string_view(buffer.data(), n));
    }
    read();
  }

  void schedule_flush() {
    if (flush_scheduled_) return;
    flush_scheduled_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->flush_scheduled_ = false;
      self->flush();
    });
  }

  // A TLS failure (a bad handshake, an untrusted certificate, a plaintext client): the alert
  // goes out if the socket takes it at once, then the connection closes.
  void tls_failed() {
    log::warning("{}: TLS {} failed: {}", peer_, tls_->handshake_done() ? "session" : "handshake",
                 tls_->error());
    std::string alert;
    tls_->take_output(&alert);
    std::error_code ignored;
    if (!alert.empty()) socket_.write_some(asio::buffer(alert), ignored);
    close();
  }

  void flush() {
    if (writing_ || closed_) return;
    std::string& out = tls_ ? encrypted_output() : conn_.output();
    if (out.empty()) {
      if (conn_.should_close())
        finish();
      else
        read();  // perhaps unblocked
      return;
    }
    sending_.swap(out);
    writing_ = true;
    last_output_ = Clock::now();
    auto written = [self = shared_from_this()](std::error_code ec, size_t) {
      self->writing_ = false;
      self->sending_.clear();
      if (ec) {
        self->close();
        return;
      }
      self->conn_.on_output_drained();
      self->flush();
      self->read();
    };
    asio::async_write(socket_, asio::buffer(sending_), std::move(written));
  }

  // What the connection wrote, encrypted, after whatever the TLS engine has to send itself.
  std::string& encrypted_output() {
    std::string& plain = conn_.output();
    if (!plain.empty() && tls_->handshake_done()) {
      if (!tls_->send(plain)) log::warning("{}: TLS failed: {}", peer_, tls_->error());
      plain.clear();
    }
    tls_->take_output(&tls_out_);
    return tls_out_;
  }

  // A refused login is answered after a delay; nobody else waits for it.
  void answer_refusal_later() {
    if (refusal_timer_) return;
    refusal_timer_ =
        std::make_unique<asio::steady_timer>(socket_.get_executor(), conn_.refusal_delay());
    refusal_timer_->async_wait([self = shared_from_this()](std::error_code ec) {
      if (ec || self->closed_) return;
      self->conn_.answer_refusal();
      self->flush();
    });
  }

  // Heartbeats: send one when nothing went out for half the interval; drop a client silent
  // for two intervals. A client that has not finished its handshake in time is dropped.
  void tick() {
    timer_.expires_after(std::chrono::milliseconds(500));
    timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (ec || self->closed_ || self->lingering_) return;
      uint16_t hb = self->conn_.heartbeat_seconds();
      auto now = Clock::now();
      if (self->conn_.handshake_overdue(now) && !self->conn_.refusing()) {
        log::warning("{}: handshake timed out, closing", self->peer_);
        self->close();
        return;
      }
      if (hb && self->conn_.open()) {
        if (now - self->last_output_ >= std::chrono::milliseconds(hb * 500)) {
          self->conn_.send_heartbeat();
          self->flush();
        }
        if (now - self->last_input_ >= std::chrono::seconds(2 * hb)) {
          log::info("{}: missed heartbeats, closing", self->peer_);
          self->close();
          return;
        }
      }
      self->tick();
    });
  }

  // The connection is over and its last frame is out. After a clean close the client may
  // still be sending (frames it wrote before its close, or before our close reached it):
  // those are read and dropped until it closes its end, so it never sees a reset. A broken
  // stream (bad framing, a wrong protocol header) is closed at once.
  void finish() {
    // A TLS stream cannot be half-closed under a pending read: it ends once the last frame is out.
    if (!conn_.closed_cleanly() || tls_) {
      close();
      return;
    }
    if (lingering_) return;
    lingering_ = true;
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    timer_.expires_after(kLinger);  // replaces the heartbeat tick
    timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->close();
    });
    discard_input();
  }

  void discard_input() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](std::error_code ec) {
      if (self->closed_) return;
      std::vector<char>& buffer = self->server_.read_buffer_;
      while (!ec) {
        self->socket_.read_some(asio::buffer(buffer), ec);  // an end of file ends it too
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
          self->discard_input();
          return;
        }
      }
      self->close();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    timer_.cancel();
    if (refusal_timer_) refusal_timer_->cancel();
    if (conn_.should_reset())
      socket_.set_option(asio::socket_base::linger(true, 0), ignored);
    else
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    conn_.on_disconnect();
    server_.sessions_.erase(shared_from_this());
    server_.session_gone();
  }

  Server& server_;
  tcp::socket socket_;
  std::unique_ptr<TlsEngine> tls_;
  std::string tls_out_;  // ciphertext not yet handed to the socket
  bool tls_identified_ = false;
  Connection conn_;
  asio::steady_timer timer_;
  std::string peer_;
  std::string in_;
  std::string sending_;
  bool reading_ = false;
  bool writing_ = false;
  bool flush_scheduled_ = false;
  bool closed_ = false;
  bool draining_ = false;
  bool lingering_ = false;
  std::unique_ptr<asio::steady_timer> refusal_timer_;
  Clock::time_point last_input_, last_output_;
};

Server::Server(asio::io_context& io, core::Engine& engine, ServerConfig config)
    : io_(io), engine_(engine), config_(std::move(config)) {}

Server::~Server() {
  stop();
  abandon_all();
}

void Server::abandon_all() {
  auto sessions = sessions_;
  for (auto& s : sessions) s->abandon();
}

Status Server::listen(const ListenOptions& options) {
  auto port = bind_all(options, false);
  if (!port.ok()) return port.status();
  port_ = port.value();
  return {};
}

namespace {

// TLS 1.2 and 1.3, the server's cipher preference, OpenSSL's default strong ciphers.
Result<std::unique_ptr<asio::ssl::context>> make_tls_context(const TlsOptions& o) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  std::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                   ec);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(ctx->native_handle(), "HIGH:!aNULL:!MD5:!RC4:!3DES");
  auto failed = [](const std::string& what, const std::error_code& e) {
    return Status::error(ReplyCode::internal_error, fmt::format("TLS: {}: {}", what, e.message()));
  };
  ctx->use_certificate_chain_file(o.cert_file, ec);
  if (ec) return failed("cannot use the certificate " + o.cert_file, ec);
  ctx->use_private_key_file(o.key_file, asio::ssl::context::pem, ec);
  if (ec) return failed("cannot use the private key " + o.key_file, ec);
  if (!o.ca_file.empty()) {
    ctx->load_verify_file(o.ca_file, ec);
    if (ec) return failed("cannot use the CA file " + o.ca_file, ec);
  }
  if (o.verify_peer) {
    auto mode = asio::ssl::verify_peer;
    if (o.fail_if_no_peer_cert) mode |= asio::ssl::verify_fail_if_no_peer_cert;
    ctx->set_verify_mode(mode);
  }
  return ctx;
}

}  // namespace

Status Server::listen_tls(const ListenOptions& options, const TlsOptions& tls) {
  struct stat st {};
  if (::stat(tls.key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    log::warning("TLS: the private key {} can be read by other users (mode {:04o}): chmod 600 it",
                 tls.key_file, st.st_mode & 07777);
  auto ctx = make_tls_context(tls);
  if (!ctx.ok()) return ctx.status();
  tls_context_ = std::move(ctx.value());
  auto port = bind_all(options, true);
  if (!port.ok()) return port.status();
  tls_port_ = port.value();
  return {};
}

Result<uint16_t> Server::bind_all(const ListenOptions& options, bool tls) {
  uint16_t port = options.port;
  std::string failures;
  size_t bound = 0;
  for (const auto& address : options.addresses) {
    std::error_code ec;
    auto ip = asio::ip::make_address(address, ec);
    if (ec)
      return Status::error(ReplyCode::internal_error, fmt::format("bad address '{}'", address));
    auto acceptor = std::make_unique<tcp::acceptor>(io_);
    tcp::endpoint endpoint(ip, port);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && ip.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      failures += fmt::format(" {}:{} ({})", address, port, ec.message());
      continue;
    }
    // With port 0 the first address picks the port and the others follow it.
    port = acceptor->local_endpoint().port();
    log::info("listening{} on {}", tls ? " (AMQPS)" : "",
              address.find(':') == std::string::npos ? fmt::format("{}:{}", address, port)
                                                     : fmt::format("[{}]:{}", address, port));
    accept(*acceptor, tls);
    acceptors_.push_back(std::move(acceptor));
    ++bound;
  }
  if (bound == 0) return Status::error(ReplyCode::internal_error, "cannot listen on" + failures);
  if (!failures.empty()) log::warning("could not listen on{}", failures);
  return port;
}

void Server::accept(tcp::acceptor& acceptor, bool tls) {
  acceptor.async_accept([this, &acceptor, tls](std::error_code ec, tcp::socket socket) {
    if (stopping_) return;
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
      // Out of file descriptors: accepting again at once would spin. Wait, then retry.
      if (!out_of_descriptors_)
        log::warning("cannot accept connections: {} ({} open); retrying every {} ms", ec.message(),
                     sessions_.size(), kAcceptRetry.count());
      out_of_descriptors_ = true;
      auto timer = std::make_shared<asio::steady_timer>(io_, kAcceptRetry);
      timer->async_wait([this, &acceptor, timer, tls](std::error_code) {
        if (!stopping_) accept(acceptor, tls);
      });
      return;
    }
    if (!ec && out_of_descriptors_) {
      log::info("accepting connections again ({} open)", sessions_.size() + 1);
      out_of_descriptors_ = false;
    }
    if (!ec) {
      std::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto remote = socket.remote_endpoint(ignored);
      bool loopback =
          remote.address().is_loopback() ||
          (remote.address().is_v6() && remote.address().to_v6().is_v4_mapped() &&
           asio::ip::make_address_v4(asio::ip::v4_mapped, remote.address().to_v6()).is_loopback());
      auto peer = fmt::format("{}:{}", remote.address().to_string(), remote.port());
      auto session = std::make_shared<Session>(*this, std::move(socket), peer, loopback,
                                               tls ? tls_context_.get() : nullptr);
      sessions_.insert(session);
      session->start();
    }
    accept(acceptor, tls);
  });
}

void Server::close_acceptors() {
  stopping_ = true;
  for (auto& a : acceptors_) {
    std::error_code ignored;
    a->close(ignored);
  }
}

void Server::stop() {
  if (stopping_) return;
  close_acceptors();
  auto sessions = sessions_;
  for (auto& s : sessions) s->shut_down();
}

void Server::shutdown(std::chrono::steady_clock::duration deadline, std::function<void()> done) {
  if (stopping_) return;
  close_acceptors();
  on_all_gone_ = std::move(done);
  for (auto& s : sessions_) s->stop_reading();
  // A disk that hangs, or clients that never answer, do not hold the stop up for ever.
  shutdown_deadline_ = std::make_unique<asio::steady_timer>(io_, deadline);
  shutdown_deadline_->async_wait([this](std::error_code ec) {
    if (ec || !on_all_gone_) return;
    log::warning("stopping with {} connection(s) still open", sessions_.size());
    std::exchange(on_all_gone_, nullptr)();
  });
  settle_then([this] {
    log::info("everything read is settled; closing {} connection(s)", sessions_.size());
    auto sessions = sessions_;
    for (auto& s : sessions) s->shut_down();
    session_gone();  // perhaps there were none
  });
}

void Server::settle_then(std::function<void()> next) {
  engine_.when_durable(engine_.last_commit(),
                       [this, next = std::move(next)](const Status&) mutable {
                         // Posted: sessions that waited for that commit resume their input first
                         // (also posted), and what they read may add commits.
                         asio::post(io_, [this, next = std::move(next)]() mutable {
                           bool busy = engine_.last_commit() > engine_.committed();
                           for (auto& s : sessions_) busy |= s->busy();
                           if (busy)
                             settle_then(std::move(next));
                           else
                             next();
                         });
                       });
}

void Server::session_gone() {
  if (sessions_.empty() && on_all_gone_ && shutdown_deadline_) {
    shutdown_deadline_->cancel();
    std::exchange(on_all_gone_, nullptr)();
  }
}

}  // namespace warren::amqp
