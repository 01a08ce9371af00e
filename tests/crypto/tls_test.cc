// Proves RequireTls13ForProcess against real handshakes on 127.0.0.1: a
// server SSL_CTX made exactly the way gRPC 1.51 makes one (TLS_method, then
// SSL_CTX_set_min_proto_version(TLS1_2) and max TLS1_3) refuses a TLS
// 1.2-only client once the policy is in force, and still completes a mutual
// TLS 1.3 handshake with certificates from the test PKI. This test talks to
// OpenSSL directly because it stands in for gRPC's own TLS code.
#include "crypto/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_pki.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::testing::IsOk;
using ::testing::HasSubstr;

constexpr char kDeviceUri[] = "fieldsync://device/tls-test";

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// Adds a PEM certificate and key to `ctx` as its own identity, and the CA as
// the only trust anchor for the peer.
void Configure(SSL_CTX* ctx, const std::string& cert_pem, const std::string& key_pem,
               const std::string& ca_pem) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(cert, nullptr);
  ASSERT_NE(key, nullptr);
  ASSERT_NE(ca, nullptr);
  ASSERT_EQ(SSL_CTX_use_certificate(ctx, cert), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx, key), 1);
  ASSERT_EQ(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  X509_free(cert);
  EVP_PKEY_free(key);
  X509_free(ca);
}

// A server context made the way gRPC 1.51's tsi layer makes one.
SslCtxPtr GrpcStyleServerContext(const fieldsync::testing::TestPki& pki) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  Configure(ctx.get(), pki.server.certificate_pem, pki.server.private_key_pem,
            pki.ca_certificate_pem());
  return ctx;
}

// A client context limited to exactly `version`. It clears the SSL_OP_NO_*
// bits the process policy set, so that it stands for a client in another
// process that does offer that version.
SslCtxPtr ClientContext(const fieldsync::testing::TestPki& pki,
                        const fieldsync::testing::TestCredentials& creds, int version) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_clear_options(ctx.get(), SSL_OP_NO_TLSv1_2 | SSL_OP_NO_TLSv1_3);
  SSL_CTX_set_min_proto_version(ctx.get(), version);
  SSL_CTX_set_max_proto_version(ctx.get(), version);
  Configure(ctx.get(), creds.certificate_pem, creds.private_key_pem, pki.ca_certificate_pem());
  return ctx;
}

struct Side {
  bool ok = false;
  int version = 0;
  std::string error;
};

Side Finish(SSL* ssl, int rc) {
  Side side;
  side.ok = rc == 1;
  if (side.ok) {
    side.version = SSL_version(ssl);
  } else {
    unsigned long err = ERR_get_error();
    const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
    side.error = reason != nullptr ? reason : "no OpenSSL error";
  }
  ERR_clear_error();
  return side;
}

void SetTimeout(int fd) {
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// One handshake over TCP on 127.0.0.1 (an ephemeral port); the server runs
// on its own thread.
std::pair<Side, Side> Handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(listener, 1), 0);
  EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  Side server;
  std::thread server_thread([&] {
    int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    SetTimeout(fd);
    SSL* ssl = SSL_new(server_ctx);
    SSL_set_fd(ssl, fd);
    server = Finish(ssl, SSL_accept(ssl));
    SSL_free(ssl);
    close(fd);
  });

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  SetTimeout(fd);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  SSL* ssl = SSL_new(client_ctx);
  SSL_set_fd(ssl, fd);
  SSL_set1_host(ssl, "localhost");
  Side client = Finish(ssl, SSL_connect(ssl));
  if (client.ok) {
    // Reads until the server has finished its side (TLS 1.3 checks the
    // client certificate after the client's SSL_connect returns).
    char byte;
    SSL_read(ssl, &byte, 1);
    ERR_clear_error();
  }
  SSL_free(ssl);
  close(fd);
  server_thread.join();
  close(listener);
  return {server, client};
}

class Tls13PolicyTest : public ::testing::Test {
 protected:
  // gRPC's own checks run on the real clock, so this PKI does too.
  const absl::Time now_ = absl::Now();
  const fieldsync::testing::TestPki pki_ = fieldsync::testing::TestPki::CreateOrDie(now_);
  const fieldsync::testing::TestCredentials device_ = pki_.IssueClientOrDie(kDeviceUri, now_);
};

// The control: without the policy, the same harness does complete TLS 1.2,
// so the refusal below is the policy's doing.
TEST_F(Tls13PolicyTest, WithoutPolicyTls12HandshakeSucceeds) {
  if (IsTls13RequiredForProcess()) GTEST_SKIP() << "policy already in force in this process";
  SslCtxPtr server_ctx = GrpcStyleServerContext(pki_);
  SslCtxPtr client_ctx = ClientContext(pki_, device_, TLS1_2_VERSION);

  auto [server, client] = Handshake(server_ctx.get(), client_ctx.get());

  EXPECT_TRUE(server.ok) << server.error;
  EXPECT_EQ(server.version, TLS1_2_VERSION);
}

TEST_F(Tls13PolicyTest, PolicyMakesGrpcStyleServerRefuseTls12) {
  ASSERT_THAT(RequireTls13ForProcess(), IsOk());
  ASSERT_TRUE(IsTls13RequiredForProcess());
  SslCtxPtr server_ctx = GrpcStyleServerContext(pki_);
  SslCtxPtr client_ctx = ClientContext(pki_, device_, TLS1_2_VERSION);

  auto [server, client] = Handshake(server_ctx.get(), client_ctx.get());

  EXPECT_FALSE(server.ok);
  EXPECT_THAT(server.error, HasSubstr("unsupported protocol"));
  EXPECT_FALSE(client.ok);
  std::printf("TLS 1.2 client refused: server says \"%s\", client says \"%s\"\n",
              server.error.c_str(), client.error.c_str());
}

TEST_F(Tls13PolicyTest, PolicyKeepsMutualTls13Working) {
  ASSERT_THAT(RequireTls13ForProcess(), IsOk());
  SslCtxPtr server_ctx = GrpcStyleServerContext(pki_);
  SslCtxPtr client_ctx = ClientContext(pki_, device_, TLS1_3_VERSION);

  auto [server, client] = Handshake(server_ctx.get(), client_ctx.get());

  EXPECT_TRUE(server.ok) << server.error;
  EXPECT_EQ(server.version, TLS1_3_VERSION);
  EXPECT_TRUE(client.ok) << client.error;
  EXPECT_EQ(client.version, TLS1_3_VERSION);
}

TEST_F(Tls13PolicyTest, PolicyMakesDefaultClientOfferOnlyTls13) {
  ASSERT_THAT(RequireTls13ForProcess(), IsOk());
  // A TLS 1.2-only server (as if in another process) and a client context
  // made the way gRPC makes its channel contexts.
  SslCtxPtr server_ctx = GrpcStyleServerContext(pki_);
  SSL_CTX_clear_options(server_ctx.get(), SSL_OP_NO_TLSv1_2);
  SSL_CTX_set_max_proto_version(server_ctx.get(), TLS1_2_VERSION);
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_method()));
  SSL_CTX_set_min_proto_version(client_ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(client_ctx.get(), TLS1_3_VERSION);
  Configure(client_ctx.get(), device_.certificate_pem, device_.private_key_pem,
            pki_.ca_certificate_pem());

  auto [server, client] = Handshake(server_ctx.get(), client_ctx.get());

  EXPECT_FALSE(server.ok);
  EXPECT_FALSE(client.ok);
}

TEST_F(Tls13PolicyTest, RepeatedCallsAreHarmless) {
  ASSERT_THAT(RequireTls13ForProcess(), IsOk());
  EXPECT_THAT(RequireTls13ForProcess(), IsOk());
  EXPECT_TRUE(IsTls13RequiredForProcess());
}

}  // namespace
}  // namespace fieldsync::crypto
