// libFuzzer target: database URL parsing (src/url.cpp, a private part compiled in).
//
// Two shapes of input, picked by the first byte:
//  - structured: scheme, user, a password that always begins with a marker, host, port, path
//    and query from the input. Whether a server URL is accepted or refused, the marker must
//    never appear in an error message or in the display form (passwords stay out of logs).
//  - raw: the rest of the input is the URL, for inputs no structure imagines.
// Refusals must be InvalidArgument naming "url"; any other exception escapes to libFuzzer.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "convstate/error.hpp"
#include "url.hpp"

namespace {

constexpr const char* marker = "Zq7SECRETpw";

[[noreturn]] void fail(const char* what, const std::string& url, const std::string& text) {
    std::fprintf(stderr, "fuzz_url: %s\n  url:  %s\n  text: %s\n", what, url.c_str(), text.c_str());
    std::abort();
}

// A part that cannot spell the marker (its first letter never appears).
std::string part(FuzzedDataProvider& in, std::size_t max) {
    std::string s = in.ConsumeRandomLengthString(max);
    for (char& c : s)
        if (c == marker[0]) c = 'x';
    return s;
}

void parse(const std::string& url, bool check_secret) {
    try {
        const convstate::detail::ConnectionTarget t = convstate::detail::parse_url(url, convstate::DatabaseOptions{});
        if (check_secret && t.display.find(marker) != std::string::npos) fail("password in display", url, t.display);
    } catch (const convstate::InvalidArgument& e) {
        if (e.field() != "url") fail("refused naming another field", url, e.field());
        if (check_secret && std::string(e.what()).find(marker) != std::string::npos)
            fail("password in an error message", url, e.what());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    if (in.ConsumeBool()) {
        parse(in.ConsumeRemainingBytesAsString(), false);
        return 0;
    }
    static const char* const schemes[] = {"postgresql://", "postgres://", "mysql://", "mariadb://", "sqlite3://",
                                          "sqlite://", "http://", ""};
    std::string url = schemes[in.ConsumeIntegralInRange<std::size_t>(0, std::size(schemes) - 1)];
    url += part(in, 24);
    url += ':';
    url += marker;
    url += part(in, 24); // the rest of the password: may hold '@', '/', '?', '%', ':'
    url += '@';
    url += part(in, 32); // host (several hosts, brackets, ports: whatever comes)
    if (in.ConsumeBool()) url += ":" + part(in, 8);
    url += "/" + part(in, 24);
    if (in.ConsumeBool()) url += "?" + part(in, 48);
    // A sqlite3 URL has no password: everything after its scheme is a file path, shown in errors.
    // (The scheme is what comes before the first "://", wherever the parts put one.)
    const std::string scheme = url.substr(0, std::min(url.find("://"), url.size()));
    parse(url, scheme != "sqlite3" && scheme != "sqlite");
    return 0;
}
