#pragma once
// A fuzz target's scratch directory: a new one under $TMPDIR (or /tmp) per process, so that
// runs side by side never share a database file.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <stdlib.h> // mkdtemp

namespace fuzz {

inline std::filesystem::path make_temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/convstate-fuzz-XXXXXX";
    if (!mkdtemp(pattern.data())) {
        std::perror("mkdtemp");
        std::abort();
    }
    return std::filesystem::absolute(pattern);
}

} // namespace fuzz
