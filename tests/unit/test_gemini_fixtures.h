/*
 * test_gemini_fixtures.h - the recorded Gemini answers (../shared/fixtures/gemini)
 * that are whole JSON bodies, for the tests that read every one of them.
 */
#ifndef GB_TEST_GEMINI_FIXTURES_H
#define GB_TEST_GEMINI_FIXTURES_H

#define GB_TEST_GEMINI_JSON_FIXTURES                                                              \
    "gemini/generate-content-text.json", "gemini/generate-content-text-2.5-flash.json",          \
        "gemini/generate-content-thinking.json",                                                  \
        "gemini/generate-content-thinking-include-thoughts.json",                                 \
        "gemini/generate-content-function-call.json",                                             \
        "gemini/generate-content-function-call-gemini3.json",                                     \
        "gemini/generate-content-code-execution.json",                                            \
        "gemini/generate-content-grounding-google-search.json",                                   \
        "gemini/generate-content-max-tokens-no-parts.json",                                       \
        "gemini/generate-content-prompt-blocked.json", "gemini/count-tokens.json",                \
        "gemini/embed-content.json"

#endif
