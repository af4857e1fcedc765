# wrong_way.cmake — proves the layer check of src/CMakeLists.txt catches a call the wrong way.
# It compiles wrong_way.c (a call into the stream layer) and links it, exactly as the build links
# each layer's check library (the objects of a layer and the layers below, --no-undefined):
#   1. with the core's set (coro, backend, core): must fail, on an undefined simul_stream_write;
#   2. with the stream layer's set (coro ... stream): must succeed, so the failure in 1 is the
#      direction of the call and nothing else;
#   3. the core's set alone: must succeed (the real core calls nothing above it).
# Inputs (-D): CC, SRC (wrong_way.c), INC (include/), WORK (scratch dir), LAYERS (a|b|...),
# OBJS_<layer> (a|b|... object files), FLAGS (extra compile and link flags, a|b|...).
foreach(v CC SRC INC WORK LAYERS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "wrong_way: -D${v}= missing")
  endif()
endforeach()
string(REPLACE "|" ";" LAYERS "${LAYERS}")
string(REPLACE "|" ";" FLAGS "${FLAGS}")
file(MAKE_DIRECTORY ${WORK})

execute_process(COMMAND ${CC} ${FLAGS} -fPIC -D_GNU_SOURCE -I${INC} -c ${SRC} -o ${WORK}/wrong_way.o
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "wrong_way: cannot compile ${SRC}:\n${err}")
endif()

# The objects of every layer up to and including `top`, in order.
function(objects_upto top out)
  set(objs "")
  foreach(layer IN LISTS LAYERS)
    string(REPLACE "|" ";" o "${OBJS_${layer}}")
    list(APPEND objs ${o})
    if(layer STREQUAL top)
      set(${out} ${objs} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "wrong_way: layer ${top} not in ${LAYERS}")
endfunction()

function(link name top extra result output)
  objects_upto(${top} objs)
  execute_process(COMMAND ${CC} ${FLAGS} -shared -o ${WORK}/${name}.so ${objs} ${extra}
    -Wl,--no-undefined -lpthread
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${result} ${rc} PARENT_SCOPE)
  set(${output} "${out}${err}" PARENT_SCOPE)
endfunction()

link(core_plus_wrong core ${WORK}/wrong_way.o rc out)
if(rc EQUAL 0)
  message(FATAL_ERROR "wrong_way: FAILED: the core's set linked with a call into the stream layer")
endif()
if(NOT out MATCHES "undefined reference to [`']simul_stream_write'")
  message(FATAL_ERROR "wrong_way: FAILED: the link failed, but not on simul_stream_write:\n${out}")
endif()
message(STATUS "wrong_way: core + a call into stream: link refused (undefined simul_stream_write)")

link(stream_plus_wrong stream ${WORK}/wrong_way.o rc out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "wrong_way: FAILED: the stream layer's set + the same call did not link:\n${out}")
endif()
message(STATUS "wrong_way: stream + the same call: links")

link(core_alone core "" rc out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "wrong_way: FAILED: the core's own set does not link:\n${out}")
endif()
message(STATUS "wrong_way: ok")
