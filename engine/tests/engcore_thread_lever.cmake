# The live thread lever: thread count and CPU pinning switched between tokens keep the logits
# bit-identical and the ids golden; bad settings are refused with a message.
ember_add_test(NAME engcore_thread_lever SOURCES ${CMAKE_CURRENT_LIST_DIR}/thread_lever_test.c
               LIBS ember_engine PkgConfig::CJSON LABELS unit TIMEOUT 600)
