#pragma once
/** @file version.hpp convstate version (the single source of the version number; CMake reads it). */

#define CONVSTATE_VERSION_MAJOR 0
#define CONVSTATE_VERSION_MINOR 1
#define CONVSTATE_VERSION_PATCH 0
#define CONVSTATE_VERSION_NUMBER \
    (CONVSTATE_VERSION_MAJOR * 10000 + CONVSTATE_VERSION_MINOR * 100 + CONVSTATE_VERSION_PATCH)

#include "convstate/export.hpp"

namespace convstate {
/** Version of the library actually linked (compare with CONVSTATE_VERSION_NUMBER). */
CONVSTATE_API int version_number() noexcept;
} // namespace convstate
