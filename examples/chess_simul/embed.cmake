# embed.cmake — writes the bytes of IN as a C array (chess_web_page, chess_web_page_len) to OUT:
# the chess simul serves its page from its own binary, wherever it is run from.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from web/index.html by embed.cmake: do not edit. */\n"
     "static const char chess_web_page[] = {\n${bytes}0};\n"
     "static const unsigned long chess_web_page_len = ${len};\n")
