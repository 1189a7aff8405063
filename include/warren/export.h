// WARREN_EXPORT marks what libwarren.so exports: the public API. Everything else in the
// library is compiled with hidden visibility, so applications cannot come to depend on
// internals and the dynamic linker has fewer symbols to resolve.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define WARREN_EXPORT __attribute__((visibility("default")))
#else
#define WARREN_EXPORT
#endif
