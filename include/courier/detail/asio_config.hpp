// Included by every courier header before any Asio header.
//
// Asio 1.22 configures itself from the standard library's feature macros
// (libstdc++ defines _GLIBCXX_HAVE_ALIGNED_ALLOC in <bits/c++config.h>, for
// example). If a translation unit reaches Asio before any standard header,
// Asio picks a different allocation scheme for its inline functions than
// other translation units do, and memory allocated by one is freed by the
// other's mismatched deallocator. Including a standard header first gives
// every translation unit that includes courier the same configuration.
#pragma once

#include <cstddef>
