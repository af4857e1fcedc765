# bad_include.cmake — check_includes.cmake must catch a wrong-way include: it runs on a copy of
# src/ where src/core/ has one more file including the stream layer's header, and must fail
# naming it. Inputs (-D): SRC, INC, LAYERS, WORK, CHECK (check_includes.cmake).
file(REMOVE_RECURSE ${WORK})
file(COPY ${SRC}/ DESTINATION ${WORK}/src)
file(WRITE ${WORK}/src/core/wrong_way.c "#include \"../stream/stream.h\"\n")
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${WORK}/src -DINC=${INC} -DLAYERS=${LAYERS}
  -P ${CHECK} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "bad_include: FAILED: the check passed a core file including stream.h")
endif()
if(NOT err MATCHES "src/core/wrong_way.c: \"../stream/stream.h\" is in src/stream, a layer above core")
  message(FATAL_ERROR "bad_include: FAILED: the check failed, but not on the planted include:\n${err}")
endif()
file(REMOVE_RECURSE ${WORK})
message(STATUS "bad_include: ok (the planted include was caught)")
