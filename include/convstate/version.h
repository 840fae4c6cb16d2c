/* convstate version: the single source of the version number, for C and C++ alike
 * (convstate/version.hpp and convstate/convstate.h include it; CMake reads it; the Python and
 * Rust package versions are checked against it by tests/version_test.sh). */
#ifndef CONVSTATE_VERSION_H
#define CONVSTATE_VERSION_H

#define CONVSTATE_VERSION_MAJOR 0
#define CONVSTATE_VERSION_MINOR 1
#define CONVSTATE_VERSION_PATCH 0
#define CONVSTATE_VERSION_NUMBER \
    (CONVSTATE_VERSION_MAJOR * 10000 + CONVSTATE_VERSION_MINOR * 100 + CONVSTATE_VERSION_PATCH)

#endif /* CONVSTATE_VERSION_H */
