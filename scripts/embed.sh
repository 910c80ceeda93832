#!/bin/sh
# embed.sh NAME FILE - print a C file defining `const char NAME[]` (the text
# of FILE) and `const size_t NAME_len`, so the binary carries its assets and
# needs nothing from the checkout at run time.  Text files only.
set -eu
name=$1
file=$2
printf '/* generated from %s by scripts/embed.sh: do not edit */\n' "$file"
printf '#include <stddef.h>\n\nextern const char %s[];\nextern const size_t %s_len;\n' "$name" "$name"
printf 'const char %s[] =\n' "$name"
# escape backslash, double quote and '?' (no trigraphs); one literal per line
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/    "/' -e 's/$/\\n"/' "$file"
printf '    "";\nconst size_t %s_len = sizeof %s - 1;\n' "$name" "$name"
