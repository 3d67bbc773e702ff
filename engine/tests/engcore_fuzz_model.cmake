# Model loading fuzz target (GGUF parsing + hyper-parameters + tensor checks + a short forward).
ember_add_fuzz(NAME model SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_model.c LIBS ember_engine)
