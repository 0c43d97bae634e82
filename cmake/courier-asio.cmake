# Defines the INTERFACE IMPORTED target courier::asio for standalone Asio
# (header-only, no CMake package of its own). Used by the top-level
# CMakeLists.txt and, installed next to it, by courierConfig.cmake.
#
# Inputs (optional): COURIER_ASIO_INCLUDE_DIR (cache), ASIO_ROOT (variable or
# environment) naming a prefix or a directory containing asio.hpp.
# Outputs: target courier::asio, COURIER_ASIO_VERSION ("1.22.1"), and
# COURIER_ASIO_FOUND (TRUE/FALSE). This file never stops the configure itself;
# the caller decides what a missing Asio means.

if(TARGET courier::asio)
  set(COURIER_ASIO_FOUND TRUE)
  return()
endif()

find_path(COURIER_ASIO_INCLUDE_DIR
  NAMES asio.hpp
  HINTS "${ASIO_ROOT}" "$ENV{ASIO_ROOT}"
  PATH_SUFFIXES include asio/include
  DOC "Directory containing standalone Asio's asio.hpp (Debian: libasio-dev)")

if(NOT COURIER_ASIO_INCLUDE_DIR OR NOT EXISTS "${COURIER_ASIO_INCLUDE_DIR}/asio/version.hpp")
  set(COURIER_ASIO_FOUND FALSE)
  return()
endif()

file(STRINGS "${COURIER_ASIO_INCLUDE_DIR}/asio/version.hpp" _courier_asio_version_line
  REGEX "^#define ASIO_VERSION [0-9]+")
string(REGEX REPLACE "^#define ASIO_VERSION ([0-9]+).*" "\\1" _courier_asio_version
  "${_courier_asio_version_line}")
math(EXPR _courier_asio_major "${_courier_asio_version} / 100000")
math(EXPR _courier_asio_minor "${_courier_asio_version} / 100 % 1000")
math(EXPR _courier_asio_patch "${_courier_asio_version} % 100")
set(COURIER_ASIO_VERSION "${_courier_asio_major}.${_courier_asio_minor}.${_courier_asio_patch}")
unset(_courier_asio_version_line)
unset(_courier_asio_version)
unset(_courier_asio_major)
unset(_courier_asio_minor)
unset(_courier_asio_patch)

# No compile definitions: Debian's standalone Asio selects standalone mode by
# itself, and a define here would be forced on every consumer's Asio code.
add_library(courier::asio INTERFACE IMPORTED)
set_target_properties(courier::asio PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${COURIER_ASIO_INCLUDE_DIR}")
set(COURIER_ASIO_FOUND TRUE)
