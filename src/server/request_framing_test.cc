#include "server/request_framing.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>

namespace moat::server {
namespace {

namespace http = boost::beast::http;

http::request_header<> Head(int version = 11) {
  http::request_header<> h;
  h.method(http::verb::post);
  h.target("/v1/chat/completions");
  h.version(version);
  return h;
}

int StatusOf(const http::request_header<>& h) {
  auto r = CheckRequestFraming(h);
  return r ? r->http_status : 0;
}

TEST(RequestFramingTest, OnlyAFinalChunkedCodingIsAccepted) {
  auto h = Head();
  h.set(http::field::transfer_encoding, "chunked");
  EXPECT_EQ(StatusOf(h), 0);
  h.set(http::field::transfer_encoding, " Chunked ");
  EXPECT_EQ(StatusOf(h), 0);
  h.set(http::field::transfer_encoding, "gzip");  // body length unknowable: smuggling
  EXPECT_EQ(StatusOf(h), 400);
  h.set(http::field::transfer_encoding, "chunked, gzip");
  EXPECT_EQ(StatusOf(h), 400);
  h.set(http::field::transfer_encoding, "chunked, chunked");
  EXPECT_EQ(StatusOf(h), 400);
  h.set(http::field::transfer_encoding, "gzip, chunked");  // well framed, but unsupported
  EXPECT_EQ(StatusOf(h), 501);
  h.set(http::field::transfer_encoding, ",");
  EXPECT_EQ(StatusOf(h), 400);
}

TEST(RequestFramingTest, CodingsSpreadOverSeveralHeaderLinesCount) {
  auto h = Head();
  h.insert(http::field::transfer_encoding, "chunked");
  h.insert(http::field::transfer_encoding, "gzip");
  EXPECT_EQ(StatusOf(h), 400);
}

TEST(RequestFramingTest, TransferEncodingWithContentLengthOrInHttp10IsRefused) {
  auto h = Head();
  h.set(http::field::transfer_encoding, "chunked");
  h.set(http::field::content_length, "10");
  EXPECT_EQ(StatusOf(h), 400);
  auto old = Head(10);
  old.set(http::field::transfer_encoding, "chunked");
  EXPECT_EQ(StatusOf(old), 400);
}

TEST(RequestFramingTest, OnlyHundredContinueIsAnExpectation) {
  auto h = Head();
  h.set(http::field::expect, "100-continue");
  EXPECT_EQ(StatusOf(h), 0);
  EXPECT_TRUE(ExpectsContinue(h));
  h.set(http::field::expect, "something-else");
  EXPECT_EQ(StatusOf(h), 417);
  auto old = Head(10);
  old.set(http::field::expect, "100-continue");
  EXPECT_FALSE(ExpectsContinue(old));  // an HTTP/1.0 client does not wait for it
  EXPECT_FALSE(ExpectsContinue(Head()));
}

}  // namespace
}  // namespace moat::server
