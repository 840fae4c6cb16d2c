#pragma once
/** @file version.hpp convstate version: the macros of convstate/version.h, and the linked library's. */

#include "convstate/version.h"
#include "convstate/export.hpp"

namespace convstate {
/** Version of the library actually linked (compare with CONVSTATE_VERSION_NUMBER). */
CONVSTATE_API int version_number() noexcept;
} // namespace convstate
