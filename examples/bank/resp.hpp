// resp.hpp: the Redis protocol (RESP2) as `bank serve` speaks it: a parser of
// client commands that never trusts a length it is sent, and the writers of
// the replies. No I/O and no Asio here; the server feeds the bytes it read.
//
// A command is an array of bulk strings (`*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n`),
// what every Redis client library, redis-cli and redis-benchmark send, or an
// inline command (`PING hi\r\n`), what a person types into `nc`. The parser
// bounds everything before it allocates or waits for anything: the number of
// arguments, the length of each, the size of the whole command. A command
// that breaks a bound or the grammar is a protocol error, after which the
// connection cannot be trusted to be in step and is closed.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bank::resp {

/// The bounds on one command.
struct limits {
  std::size_t max_arguments = 64;
  std::size_t max_command_bytes = 16 * 1024;  ///< the whole command, framing included
};

/// What parse() found at the start of the bytes it was given.
enum class parse_status {
  command,     ///< one whole command: its arguments and its size
  incomplete,  ///< the start of a command, within the bounds: read more
  empty,       ///< an empty line or empty array: skip `consumed` bytes
  error,       ///< a protocol error, described by `error`
};

struct parse_result {
  parse_status status = parse_status::incomplete;
  std::size_t consumed = 0;  ///< bytes of the command (command, empty)
  const char* error = "";    ///< for parse_status::error: the text after "Protocol error: "
};

namespace detail {

// The decimal number in [first, last): digits only (an optional leading '-'
// when `allow_negative`), at most 18 of them. False if it is not one.
inline bool parse_length(const char* first, const char* last, bool allow_negative,
                         std::int64_t& out) {
  bool negative = false;
  if (allow_negative && first != last && *first == '-') {
    negative = true;
    ++first;
  }
  if (first == last || last - first > 18) return false;
  std::int64_t v = 0;
  for (const char* p = first; p != last; ++p) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (*p - '0');
  }
  out = negative ? -v : v;
  return true;
}

// Where the "\r\n" that ends the line starting at `from` begins, or npos.
inline std::size_t line_end(std::string_view data, std::size_t from) {
  return data.find("\r\n", from);
}

inline bool printable(char c) { return (c >= 0x20 && c < 0x7f) || c == '\t'; }

}  // namespace detail

/// Parses the command at the start of `data` into `args` (views into `data`,
/// valid while it is). Never reads past `data`, never trusts a length beyond
/// the limits: a command that would exceed them is an error as soon as its
/// header says so, not once its bytes arrive.
inline parse_result parse(std::string_view data, std::vector<std::string_view>& args,
                          const limits& lim = {}) {
  args.clear();
  parse_result r;
  if (data.empty()) return r;
  auto fail = [&r](const char* what) {
    r.status = parse_status::error;
    r.error = what;
    return r;
  };
  if (data[0] != '*') {
    // An inline command: words separated by spaces, up to "\n" or "\r\n".
    const std::size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      if (data.size() > lim.max_command_bytes) return fail("too big inline request");
      return r;
    }
    if (nl + 1 > lim.max_command_bytes) return fail("too big inline request");
    std::string_view line = data.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (char c : line)
      if (!detail::printable(c)) return fail("invalid inline request");
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i == line.size()) break;
      std::size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
      if (args.size() == lim.max_arguments) return fail("too many arguments");
      args.push_back(line.substr(i, j - i));
      i = j;
    }
    r.consumed = nl + 1;
    r.status = args.empty() ? parse_status::empty : parse_status::command;
    return r;
  }
  // An array of bulk strings.
  std::size_t eol = detail::line_end(data, 1);
  if (eol == std::string_view::npos) {
    if (data.size() > 24) return fail("invalid multibulk length");
    return r;
  }
  std::int64_t count = 0;
  if (!detail::parse_length(data.data() + 1, data.data() + eol, true, count))
    return fail("invalid multibulk length");
  std::size_t pos = eol + 2;
  if (count <= 0) {  // "*0" and the null array "*-1" carry no command
    r.consumed = pos;
    r.status = parse_status::empty;
    return r;
  }
  if (static_cast<std::uint64_t>(count) > lim.max_arguments) return fail("too many arguments");
  for (std::int64_t k = 0; k < count; ++k) {
    if (pos >= data.size()) return r;
    if (data[pos] != '$') return fail("expected '$'");
    eol = detail::line_end(data, pos + 1);
    if (eol == std::string_view::npos) {
      if (data.size() - pos > 24) return fail("invalid bulk length");
      return r;
    }
    std::int64_t len = 0;
    if (!detail::parse_length(data.data() + pos + 1, data.data() + eol, false, len))
      return fail("invalid bulk length");
    const std::size_t start = eol + 2;
    if (static_cast<std::uint64_t>(len) > lim.max_command_bytes ||
        start + static_cast<std::size_t>(len) + 2 > lim.max_command_bytes)
      return fail("command too big");
    const std::size_t end = start + static_cast<std::size_t>(len);
    if (end + 2 > data.size()) return r;
    if (data[end] != '\r' || data[end + 1] != '\n') return fail("bulk string not terminated");
    args.push_back(data.substr(start, static_cast<std::size_t>(len)));
    pos = end + 2;
  }
  r.consumed = pos;
  r.status = parse_status::command;
  return r;
}

// --- replies ---------------------------------------------------------------------

/// `+text\r\n` (text must hold no CR or LF).
inline void simple(std::string& out, std::string_view text) {
  out += '+';
  out += text;
  out += "\r\n";
}

/// `-text\r\n`, with CR and LF in `text` replaced by spaces.
inline void error(std::string& out, std::string_view text) {
  out += '-';
  for (char c : text) out += (c == '\r' || c == '\n') ? ' ' : c;
  out += "\r\n";
}

namespace detail {
// `<type><n>\r\n`
template <class N>
void header(std::string& out, char type, N n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out += type;
  out.append(buf, r.ptr);
  out += "\r\n";
}
}  // namespace detail

/// `:n\r\n`
inline void integer(std::string& out, std::int64_t n) { detail::header(out, ':', n); }

/// `$len\r\nbytes\r\n`
inline void bulk(std::string& out, std::string_view bytes) {
  detail::header(out, '$', bytes.size());
  out += bytes;
  out += "\r\n";
}

/// `*n\r\n`, the header of an array of `n` replies that follow.
inline void array(std::string& out, std::size_t n) { detail::header(out, '*', n); }

}  // namespace bank::resp
