# cmake -DBUILD_DIR=<courier build> -DSTAGE=<empty prefix> -P stage_install.cmake
# Fresh staged install of courier, used by the consumer.find_package test.
file(REMOVE_RECURSE "${STAGE}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${STAGE}"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${STAGE} failed: ${result}")
endif()
