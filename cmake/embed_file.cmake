# Turns a text file into a C++ source defining `extern const char* const VAR` in namespace NS.
# Usage: cmake -DINPUT=... -DOUTPUT=... -DVAR=... -DNS=... -P embed_file.cmake
file(READ "${INPUT}" content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE "${OUTPUT}" "// Generated from ${INPUT} by cmake/embed_file.cmake. Do not edit.\nnamespace ${NS} {\nnamespace {\nconst unsigned char kData[] = {${bytes}0x00};\n}  // namespace\nextern const char* const ${VAR};\nconst char* const ${VAR} = reinterpret_cast<const char*>(kData);\n}  // namespace ${NS}\n")
