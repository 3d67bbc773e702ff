# Sampling, chat templates, the generation loop (helper "engsamp").
ember_add_test(NAME engsamp_sampler_test SOURCES tests/engsamp_sampler_test.c LIBS ember_engine)
