// TLS both ways, against the real binaries with certificates this test makes (openssl CLI):
// the gateway forwarding to moat-test-upstream over https (verification on by default, a CA
// file, the verified name, client certificates, pooled and resumed sessions), and the gateway's
// own HTTPS listener (served, then its certificate reloaded on SIGHUP).

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace ssl = asio::ssl;
using moat::testing::HttpClient;
using moat::testing::HttpResponse;
using moat::testing::SseDataPayloads;
using moat::testing::TempDir;
using moat::testing::TestUpstream;
using std::chrono::milliseconds;

// One HTTPS request made the way a careful client makes it: the chain verified against `ca`,
// the name against `server_name` (sent as SNI when it is a host name).
struct TlsExchange {
  int status = 0;
  std::string body;
  std::string peer_common_name;
  std::string error;  // "" on success
};

TlsExchange HttpsRequest(std::uint16_t port, const std::string& ca, const std::string& method,
                         const std::string& target, const std::string& body = "",
                         const std::string& bearer = "", const std::string& server_name = "localhost") {
  TlsExchange out;
  try {
    asio::io_context io;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(ca);
    ctx.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), server_name.c_str());
    stream.set_verify_callback(ssl::host_name_verification(server_name));
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(stream).connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    stream.handshake(ssl::stream_base::client);
    if (X509* cert = SSL_get1_peer_certificate(stream.native_handle())) {
      char cn[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
      out.peer_common_name = cn;
      X509_free(cert);
    }
    http::request<http::string_body> req{method == "POST" ? http::verb::post : http::verb::get, target, 11};
    req.set(http::field::host, server_name);
    if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    out.status = res.result_int();
    out.body = res.body();
    beast::error_code ec;
    stream.shutdown(ec);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

std::string Str(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::int64_t Int(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return -1;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  return -1;
}

std::string ErrorCode(const std::string& body) {
  json::object root = ParseObject(body);
  const json::value* e = root.if_contains("error");
  return e != nullptr && e->is_object() ? Str(e->as_object(), "code") : std::string();
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>(pki_dir_.path());
    ASSERT_TRUE(pki_->MakeCa().ok());
    ASSERT_TRUE(pki_->MakeServerCert("server", "localhost").ok());
    ASSERT_TRUE(pki_->MakeServerCert("server2", "moat-reloaded").ok());
    ASSERT_TRUE(pki_->MakeClientCert("client", "moat-gateway").ok());
  }

  // The test upstream over HTTPS (`extra`: e.g. --tls-client-ca).
  void StartTlsUpstream(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--threads", "2", "--tls-cert", pki_->File("server.pem"),
                                     "--tls-key", pki_->File("server.key")};
    args.insert(args.end(), extra.begin(), extra.end());
    Status s = upstream_.Start(args);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // A gateway with one https model per entry of `models` (TOML key lines for that model).
  void StartMoat(const std::vector<std::pair<std::string, std::string>>& models,
                 const std::string& server_extra = "") {
    std::string toml = "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 1\nadmin_token = \"test-admin\"\n" +
                       server_extra + "\n[storage]\ndata_dir = \"{data_dir}\"\n\n[limits.unverified]\nkey_rpm = 0\n";
    for (const auto& [name, lines] : models) {
      toml += "\n[[models]]\nname = \"" + name + "\"\nupstream_model = \"test-model\"\nbase_url = \"https://127.0.0.1:" +
              std::to_string(upstream_.port()) + "/v1\"\nforward_headers = [\"x-test-tokens\", \"x-test-close\"]\n" +
              lines + "\n";
    }
    ASSERT_TRUE(moat_.WriteConfig(toml).ok());
    StatusOr<std::string> key = moat_.CreateAccountAndKeyWithCli("tls", "unverified");
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    key_ = *key;
    Status s = moat_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    client_ = std::make_unique<HttpClient>("127.0.0.1", moat_.port(), milliseconds(10000));
  }

  HttpResponse Chat(const std::string& model, moat::testing::HttpHeaders extra = {},
                    const std::string& params = R"("max_tokens":4)") {
    extra["authorization"] = "Bearer " + key_;
    extra["x-test-tokens"] = "3";
    StatusOr<HttpResponse> res = client_->Request(
        "POST", "/v1/chat/completions",
        R"({"model":")" + model + R"(","messages":[{"role":"user","content":"over tls"}],)" + params + "}", extra);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  json::object UpstreamStats() {
    TlsExchange s = HttpsRequest(upstream_.port(), pki_->File("ca.pem"), "GET", "/stats");
    EXPECT_EQ(s.error, "");
    return ParseObject(s.body);
  }

  TempDir pki_dir_{"moat-pki"};
  std::unique_ptr<TestPki> pki_;
  TestUpstream upstream_;
  MoatInstance moat_;
  std::string key_;
  std::unique_ptr<HttpClient> client_;
};

std::string CaLine(const TestPki& pki) { return "tls_ca_file = \"" + pki.File("ca.pem") + "\""; }

TEST_F(TlsTest, HttpsUpstreamIsVerifiedAgainstTheConfiguredCa) {
  ASSERT_NO_FATAL_FAILURE(StartTlsUpstream());
  ASSERT_NO_FATAL_FAILURE(StartMoat({{"by-ip", CaLine(*pki_)},  // verified against the certificate's IP
                                     {"by-name", CaLine(*pki_) + "\ntls_server_name = \"localhost\""}}));
  for (const char* model : {"by-ip", "by-name"}) {
    HttpResponse res = Chat(model);
    ASSERT_EQ(res.status, 200) << model << ": " << res.body;
    EXPECT_NE(res.body.find("echo: over tls"), std::string::npos) << res.body;
  }
  HttpResponse stream = Chat("by-name", {}, R"("max_tokens":4,"stream":true)");
  ASSERT_EQ(stream.status, 200) << stream.body;
  std::vector<std::string> payloads = SseDataPayloads(stream.body);
  ASSERT_FALSE(payloads.empty());
  EXPECT_EQ(payloads.back(), "[DONE]");
}

TEST_F(TlsTest, VerificationIsOnByDefaultAndChecksTheName) {
  ASSERT_NO_FATAL_FAILURE(StartTlsUpstream());
  ASSERT_NO_FATAL_FAILURE(StartMoat({{"system-store", ""},  // the test CA is not in the system's trust store
                                     {"wrong-name", CaLine(*pki_) + "\ntls_server_name = \"api.example.org\""},
                                     {"unverified", "tls_verify = false"}}));
  HttpResponse untrusted = Chat("system-store");
  EXPECT_EQ(untrusted.status, 502) << untrusted.body;
  EXPECT_EQ(ErrorCode(untrusted.body), "upstream_tls_error") << untrusted.body;
  EXPECT_NE(untrusted.body.find("certificate"), std::string::npos) << untrusted.body;
  HttpResponse wrong = Chat("wrong-name");
  EXPECT_EQ(wrong.status, 502) << wrong.body;
  EXPECT_EQ(ErrorCode(wrong.body), "upstream_tls_error") << wrong.body;
  // Only an explicit opt-out skips verification.
  EXPECT_EQ(Chat("unverified").status, 200);
  EXPECT_EQ(Int(UpstreamStats(), "requests"), 1) << "a refused handshake forwards nothing";
}

TEST_F(TlsTest, ClientCertificateIsPresentedWhenConfigured) {
  ASSERT_NO_FATAL_FAILURE(StartTlsUpstream({"--tls-client-ca", pki_->File("ca.pem")}));
  ASSERT_NO_FATAL_FAILURE(StartMoat({{"anonymous", CaLine(*pki_)},
                                     {"with-cert", CaLine(*pki_) + "\ntls_client_cert_file = \"" + pki_->File("client.pem") +
                                                       "\"\ntls_client_key_file = \"" + pki_->File("client.key") + "\""}}));
  HttpResponse anonymous = Chat("anonymous");
  EXPECT_EQ(anonymous.status, 502) << anonymous.body;
  HttpResponse with_cert = Chat("with-cert");
  EXPECT_EQ(with_cert.status, 200) << with_cert.body;
}

TEST_F(TlsTest, ConnectionsArePooledAndNewOnesResumeTheSession) {
  ASSERT_NO_FATAL_FAILURE(StartTlsUpstream());
  ASSERT_NO_FATAL_FAILURE(StartMoat({{"pooled", CaLine(*pki_)}}));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Chat("pooled").status, 200);
  json::object stats = UpstreamStats();
  EXPECT_EQ(Int(stats, "tls_handshakes"), 2) << json::serialize(stats);  // the gateway's + /stats
  // The upstream closes after this answer: the next request needs a new connection, which
  // resumes the session instead of a full handshake.
  ASSERT_EQ(Chat("pooled", {{"x-test-close", "1"}}).status, 200);
  ASSERT_EQ(Chat("pooled").status, 200);
  stats = UpstreamStats();
  EXPECT_EQ(Int(stats, "tls_handshakes"), 4) << json::serialize(stats);
  EXPECT_EQ(Int(stats, "tls_resumed"), 1) << json::serialize(stats);
  StatusOr<HttpResponse> metrics = client_->Request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("moat_upstream_tls_handshakes_total{model=\"pooled\",resumed=\"yes\"} 1"),
            std::string::npos)
      << metrics->body;
}

// ---------------------------------------------------------------------------------------------
// The gateway's own HTTPS listener.

class TlsListenerTest : public TlsTest {
 protected:
  void StartListener() {
    Status s = upstream_.Start({"--threads", "2"});
    ASSERT_TRUE(s.ok()) << s.ToString();
    cert_ = pki_dir_.File("live.pem");
    key_file_ = pki_dir_.File("live.key");
    Install("server");
    std::string toml = "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 2\ntls_listen = \"127.0.0.1:0\"\n"
                       "tls_cert_file = \"" + cert_ + "\"\ntls_key_file = \"" + key_file_ +
                       "\"\n\n[storage]\ndata_dir = \"{data_dir}\"\n\n[[models]]\nname = \"test-model\"\n"
                       "base_url = \"http://127.0.0.1:" + std::to_string(upstream_.port()) + "\"\n";
    ASSERT_TRUE(moat_.WriteConfig(toml).ok());
    StatusOr<std::string> key = moat_.CreateAccountAndKeyWithCli("tls", "unverified");
    ASSERT_TRUE(key.ok());
    key_ = *key;
    s = moat_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(moat_.tls_port(), 0);
  }
  // Copies the certificate and key `name` into the files the gateway serves.
  void Install(const std::string& name) {
    std::filesystem::copy_file(pki_->File(name + ".pem"), cert_, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(pki_->File(name + ".key"), key_file_, std::filesystem::copy_options::overwrite_existing);
    ::chmod(key_file_.c_str(), 0600);
  }
  std::string cert_, key_file_;
};

TEST_F(TlsListenerTest, ServesHttpsAndReloadsItsCertificateOnSighup) {
  ASSERT_NO_FATAL_FAILURE(StartListener());
  TlsExchange health = HttpsRequest(moat_.tls_port(), pki_->File("ca.pem"), "GET", "/healthz");
  ASSERT_EQ(health.error, "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.peer_common_name, "localhost");
  TlsExchange chat = HttpsRequest(moat_.tls_port(), pki_->File("ca.pem"), "POST", "/v1/chat/completions",
                                  R"({"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":3})",
                                  key_);
  EXPECT_EQ(chat.status, 200) << chat.error << chat.body;
  // Plain HTTP still on its own port.
  EXPECT_EQ(HttpClient("127.0.0.1", moat_.port()).Request("GET", "/healthz")->status, 200);

  Install("server2");
  ASSERT_EQ(::kill(moat_.pid(), SIGHUP), 0);
  std::string cn;
  for (int i = 0; i < 50 && cn != "moat-reloaded"; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    cn = HttpsRequest(moat_.tls_port(), pki_->File("ca.pem"), "GET", "/healthz").peer_common_name;
  }
  EXPECT_EQ(cn, "moat-reloaded");

  // A broken certificate file is not taken: the previous certificate stays in use.
  { std::ofstream(cert_, std::ios::trunc) << "not a certificate\n"; }
  ASSERT_EQ(::kill(moat_.pid(), SIGHUP), 0);
  std::this_thread::sleep_for(milliseconds(500));
  TlsExchange after = HttpsRequest(moat_.tls_port(), pki_->File("ca.pem"), "GET", "/healthz");
  EXPECT_EQ(after.status, 200) << after.error;
  EXPECT_EQ(after.peer_common_name, "moat-reloaded");
  EXPECT_NE(moat_.Log().find("TLS certificate not reloaded"), std::string::npos) << moat_.Log();
}

TEST_F(TlsListenerTest, AKeyFileOthersCanReadIsRefused) {
  Status s = upstream_.Start({"--threads", "1"});
  ASSERT_TRUE(s.ok());
  ::chmod(pki_->File("server.key").c_str(), 0644);
  std::string toml = "[server]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\ntls_cert_file = \"" +
                     pki_->File("server.pem") + "\"\ntls_key_file = \"" + pki_->File("server.key") +
                     "\"\n\n[storage]\ndata_dir = \"{data_dir}\"\n\n[[models]]\nname = \"m\"\nbase_url = "
                     "\"http://127.0.0.1:" + std::to_string(upstream_.port()) + "\"\n";
  ASSERT_TRUE(moat_.WriteConfig(toml).ok());
  EXPECT_FALSE(moat_.Start().ok());
  EXPECT_NE(moat_.Log().find("chmod 600"), std::string::npos) << moat_.Log();
}

}  // namespace
}  // namespace moat::integration
