#pragma once
// Checks of a request head that the HTTP parser leaves to us, made before any body byte is read
// (RFC 9112 §6). A head that fails them is answered and the connection closed, because its body
// length cannot be trusted: reading on would let the body be taken for a second request.

#include <optional>

#include <boost/beast/http/message.hpp>

#include "moat/filter.h"

namespace moat::server {

// Returns the refusal to send (then close the connection), or nullopt when the head is sound:
//  - Transfer-Encoding whose final coding is not chunked (e.g. "gzip"), or that names chunked
//    twice: 400 bad_transfer_encoding (the body length is unknowable);
//  - any other transfer coding ("gzip, chunked"): 501 unsupported_transfer_encoding;
//  - Transfer-Encoding in an HTTP/1.0 request, or together with Content-Length: 400;
//  - an Expect other than "100-continue": 417 expectation_failed.
std::optional<LocalReply> CheckRequestFraming(const boost::beast::http::request_header<>& head);

// True when the client waits for "100 Continue" before sending its body.
bool ExpectsContinue(const boost::beast::http::request_header<>& head);

}  // namespace moat::server
