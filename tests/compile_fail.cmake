# cmake -DCOMPILER=<c++> -DSOURCE=<file.cpp> -DINCLUDE_DIRS=<dir|dir...> -P compile_fail.cmake
#
# Passes when <file.cpp> does NOT compile and the compiler's output matches the
# CMake regex given on the file's first line, `// expect: <regex>`. Fails if
# the line is missing, if the file compiles, or if the diagnostics differ.
foreach(var COMPILER SOURCE INCLUDE_DIRS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compile_fail.cmake: -D${var}=... is required")
  endif()
endforeach()

file(STRINGS "${SOURCE}" first_line LIMIT_COUNT 1)
if(NOT first_line MATCHES "^// expect: (.+)$")
  message(FATAL_ERROR "${SOURCE}: first line must be `// expect: <regex>`, got: ${first_line}")
endif()
set(expect "${CMAKE_MATCH_1}")
string(STRIP "${expect}" expect)

string(REPLACE "|" ";" include_dirs "${INCLUDE_DIRS}")
set(include_flags "")
foreach(dir IN LISTS include_dirs)
  if(dir)
    list(APPEND include_flags "-I${dir}")
  endif()
endforeach()

# Plain ASCII quotes in diagnostics, whatever the caller's locale.
set(ENV{LC_ALL} C)
execute_process(
  COMMAND "${COMPILER}" -std=c++20 -fsyntax-only ${include_flags} "${SOURCE}"
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)
message("${output}")

if(result EQUAL 0)
  message(FATAL_ERROR "FAIL: ${SOURCE} compiled cleanly; it must be rejected with: ${expect}")
endif()
if(NOT output MATCHES "${expect}")
  message(FATAL_ERROR "FAIL: ${SOURCE} was rejected, but no diagnostic matches: ${expect}")
endif()
message("PASS: rejected as expected (${expect})")
