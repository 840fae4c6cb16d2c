#pragma once
/** @file export.hpp Symbol visibility for the convstate shared library. */

/** @def CONVSTATE_API
 *  Marks a symbol exported by the convstate library: empty when CONVSTATE_STATIC is defined,
 *  dllexport/dllimport on Windows (CONVSTATE_BUILDING while building the library), default
 *  visibility elsewhere. */

#if defined(CONVSTATE_STATIC)
#  define CONVSTATE_API
#elif defined(_WIN32)
#  if defined(CONVSTATE_BUILDING)
#    define CONVSTATE_API __declspec(dllexport)
#  else
#    define CONVSTATE_API __declspec(dllimport)
#  endif
#else
#  define CONVSTATE_API __attribute__((visibility("default")))
#endif
