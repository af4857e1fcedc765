# amqp.cmake — included by tests/CMakeLists.txt: one RabbitMQ node for the whole amqp suite.
# The idea: CTest's fixtures start the broker once before the first test that needs it and stop it
# after the last (broker.sh keeps its state in the build tree); the cases that kill, freeze or
# alarm it could hurt the others, so every broker case holds one resource lock and they run one
# at a time while the rest of the suite runs in parallel. Every test file that talks to the
# broker (test_amqp_broker, test_amqp_tls, test_amqp_more) shares that one node.
if(TARGET test_amqp_broker)
  set(amqp_state ${CMAKE_BINARY_DIR}/tests/amqp-broker)
  set(amqp_sh ${CMAKE_CURRENT_SOURCE_DIR}/amqp/broker.sh)
  add_test(NAME amqp.broker_start COMMAND bash ${amqp_sh} start ${amqp_state})
  add_test(NAME amqp.broker_stop COMMAND bash ${amqp_sh} stop ${amqp_state})
  set_tests_properties(amqp.broker_start PROPERTIES FIXTURES_SETUP amqp_broker TIMEOUT 120
                       LABELS "unit" RESOURCE_LOCK amqp_broker)
  set_tests_properties(amqp.broker_stop PROPERTIES FIXTURES_CLEANUP amqp_broker TIMEOUT 120
                       LABELS "unit" RESOURCE_LOCK amqp_broker)
  foreach(file test_amqp_broker test_amqp_tls test_amqp_more)
    if(NOT TARGET ${file})
      continue()
    endif()
    target_compile_definitions(${file} PRIVATE
      SIMUL_AMQP_BROKER_SH="${amqp_sh}"
      SIMUL_AMQP_PIKA_PEER="${CMAKE_CURRENT_SOURCE_DIR}/amqp/pika_peer.py")
    # The cases of the file, from its source (as the generic loop above found them).
    file(READ ${CMAKE_CURRENT_SOURCE_DIR}/unit/amqp/${file}.c amqp_text)
    string(REGEX MATCHALL "cmocka_unit_test\\([ \t\r\n]*[A-Za-z_][A-Za-z0-9_]*" amqp_calls
           "${amqp_text}")
    foreach(call IN LISTS amqp_calls)
      string(REGEX REPLACE "^cmocka_unit_test\\([ \t\r\n]*" "" case "${call}")
      set_tests_properties(${file}.${case} PROPERTIES FIXTURES_REQUIRED amqp_broker
        RESOURCE_LOCK amqp_broker ENVIRONMENT "SIMUL_AMQP_BROKER=${amqp_state}" TIMEOUT 300)
    endforeach()
  endforeach()
endif()

# e2e.amqp_work_queue: the example against the same broker.
if(TARGET example_amqp_work_queue AND TARGET test_amqp_broker)
  add_test(NAME e2e.amqp_work_queue
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/amqp/work_queue_test.sh
                   $<TARGET_FILE:example_amqp_work_queue> ${amqp_sh} ${amqp_state})
  set_tests_properties(e2e.amqp_work_queue PROPERTIES FIXTURES_REQUIRED amqp_broker
    RESOURCE_LOCK amqp_broker TIMEOUT 300 LABELS "e2e"
    FAIL_REGULAR_EXPRESSION "FAIL:")
endif()

# test_amqp_sni: a TLS server of its own with the TLS suite's PKI (made by tests/tls/make_certs.sh).
if(TARGET test_amqp_sni AND TARGET test_tls AND TARGET simul_tls_static)
  target_compile_definitions(test_amqp_sni PRIVATE SIMUL_TLS_CERTS="${CMAKE_BINARY_DIR}/tests/tls-certs")
endif()
