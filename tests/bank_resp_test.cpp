// The Redis protocol codec of `bank serve` (examples/bank/resp.hpp).
#include "bank/resp.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using bank::resp::parse;
using bank::resp::parse_status;

std::vector<std::string> words(const std::vector<std::string_view>& args) {
  return {args.begin(), args.end()};
}

}  // namespace

TEST_CASE("resp: an array of bulk strings is one command", "[resp]") {
  const std::string wire = "*3\r\n$4\r\nOPEN\r\n$5\r\nalice\r\n$4\r\n1000\r\n";
  std::vector<std::string_view> args;
  const auto r = parse(wire, args);
  REQUIRE(r.status == parse_status::command);
  CHECK(r.consumed == wire.size());
  CHECK(words(args) == std::vector<std::string>{"OPEN", "alice", "1000"});
}

TEST_CASE("resp: bulk strings may hold any byte, CR and LF included", "[resp]") {
  static constexpr char bytes[] = "*2\r\n$4\r\nPING\r\n$4\r\na\r\n\0\r\n";
  const std::string wire(bytes, sizeof bytes - 1);  // the NUL inside included
  std::vector<std::string_view> args;
  const auto r = parse(wire, args);
  REQUIRE(r.status == parse_status::command);
  CHECK(args[1] == std::string_view("a\r\n\0", 4));
}

TEST_CASE("resp: every proper prefix of a command is incomplete", "[resp]") {
  const std::string wire = "*3\r\n$8\r\nTRANSFER\r\n$1\r\na\r\n$12\r\nbbbbbbbbbbbb\r\n";
  std::vector<std::string_view> args;
  for (std::size_t n = 0; n < wire.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK(parse(std::string_view(wire).substr(0, n), args).status == parse_status::incomplete);
  }
  CHECK(parse(wire, args).status == parse_status::command);
}

TEST_CASE("resp: pipelined commands are parsed one at a time, in order", "[resp]") {
  std::string wire;
  for (int i = 0; i < 100; ++i)
    wire += "*2\r\n$4\r\nPING\r\n$" + std::to_string(std::to_string(i).size()) + "\r\n" +
            std::to_string(i) + "\r\n";
  wire += "PING inline\r\n";
  std::vector<std::string_view> args;
  std::string_view rest = wire;
  for (int i = 0; i < 100; ++i) {
    const auto r = parse(rest, args);
    REQUIRE(r.status == parse_status::command);
    CHECK(args[1] == std::to_string(i));
    rest.remove_prefix(r.consumed);
  }
  const auto r = parse(rest, args);
  REQUIRE(r.status == parse_status::command);
  CHECK(words(args) == std::vector<std::string>{"PING", "inline"});
  CHECK(r.consumed == rest.size());
}

TEST_CASE("resp: inline commands split on spaces and end at LF or CRLF", "[resp]") {
  std::vector<std::string_view> args;
  auto r = parse("  balance   alice \n", args);
  REQUIRE(r.status == parse_status::command);
  CHECK(words(args) == std::vector<std::string>{"balance", "alice"});
  r = parse("\r\n", args);
  CHECK(r.status == parse_status::empty);
  CHECK(r.consumed == 2);
  CHECK(parse("PING", args).status == parse_status::incomplete);
  CHECK(parse("*0\r\n", args).status == parse_status::empty);
  CHECK(parse("*-1\r\n", args).status == parse_status::empty);
}

TEST_CASE("resp: lengths beyond the limits are errors as soon as the header says so", "[resp]") {
  std::vector<std::string_view> args;
  // 2^40 bytes announced: refused before any of them arrive.
  auto r = parse("*2\r\n$4\r\nPING\r\n$1099511627776\r\n", args);
  CHECK(r.status == parse_status::error);
  CHECK(std::string(r.error) == "command too big");
  // A 10 MB argument.
  CHECK(parse("*2\r\n$4\r\nPING\r\n$10485760\r\n", args).status == parse_status::error);
  // More digits than any length has.
  CHECK(parse("*1\r\n$99999999999999999999999\r\n", args).status == parse_status::error);
  CHECK(parse("*99999999999999999999999\r\n", args).status == parse_status::error);
  // Too many arguments.
  CHECK(parse("*65\r\n", args).status == parse_status::error);
  // A header line that never ends.
  CHECK(parse("*1" + std::string(30, '1'), args).status == parse_status::error);
  // An inline command longer than a command may be.
  CHECK(parse(std::string(20000, 'a'), args).status == parse_status::error);
  bank::resp::limits small;
  small.max_command_bytes = 32;
  CHECK(parse("*1\r\n$40\r\n", args, small).status == parse_status::error);
}

TEST_CASE("resp: malformed framing is an error", "[resp]") {
  std::vector<std::string_view> args;
  CHECK(parse("*x\r\n", args).status == parse_status::error);
  CHECK(parse("*1\r\n+PING\r\n", args).status == parse_status::error);
  CHECK(parse("*1\r\n$-1\r\n", args).status == parse_status::error);
  CHECK(parse("*1\r\n$4\r\nPINGxx", args).status == parse_status::error);
  CHECK(parse("*1\r\n$\r\n", args).status == parse_status::error);
  CHECK(parse(std::string("PI\0NG\r\n", 7), args).status == parse_status::error);
  CHECK(parse("\x01\x02\x03\n", args).status == parse_status::error);
}

TEST_CASE("resp: replies are framed as RESP2", "[resp]") {
  std::string out;
  bank::resp::simple(out, "OK");
  bank::resp::error(out, "ERR bad\r\nthing");
  bank::resp::integer(out, -42);
  bank::resp::bulk(out, "hi");
  bank::resp::array(out, 2);
  CHECK(out == "+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nhi\r\n*2\r\n");
}
