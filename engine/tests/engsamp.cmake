# Sampling, chat templates, the generation loop (helper "engsamp").
ember_add_test(NAME engsamp_sampler_test SOURCES tests/engsamp_sampler_test.c LIBS ember_engine)
ember_add_test(NAME engsamp_chat_test SOURCES tests/engsamp_chat_test.c LIBS ember_engine)
ember_add_fuzz(NAME chat_template SOURCES tests/engsamp_chat_fuzz.c LIBS ember_engine)
ember_add_test(NAME engsamp_stop_test SOURCES tests/engsamp_stop_test.c LIBS ember_engine)
