/** @file version.h
 * convstate version: the single source of the version number, for C and C++ alike
 * (convstate/version.hpp and convstate/convstate.h include it; CMake reads it; the Python and
 * Rust package versions are checked against it by tests/version_test.sh). */
#ifndef CONVSTATE_VERSION_H
#define CONVSTATE_VERSION_H

/** Major version of these headers. */
#define CONVSTATE_VERSION_MAJOR 0
/** Minor version of these headers. */
#define CONVSTATE_VERSION_MINOR 1
/** Patch version of these headers. */
#define CONVSTATE_VERSION_PATCH 0
/** MAJOR * 10000 + MINOR * 100 + PATCH; compare with convstate_version_number() (C) or
 *  convstate::version_number() (C++), the version of the library actually linked. */
#define CONVSTATE_VERSION_NUMBER \
    (CONVSTATE_VERSION_MAJOR * 10000 + CONVSTATE_VERSION_MINOR * 100 + CONVSTATE_VERSION_PATCH)

#endif /* CONVSTATE_VERSION_H */
