# Retrains the detection model from the shared datasets and checks it is byte for byte the
# shipped models/detection-default.bin (ctest detection_model_reproducible).
# Variables: MOAT (the moat binary), DATA (dataset folder), OUT (scratch file), EXPECTED.
if(NOT EXISTS "${DATA}/MANIFEST.json")
  message("SKIP: no dataset folder at ${DATA}; the shipped model cannot be rebuilt here")
  return()
endif()
execute_process(COMMAND "${MOAT}" detect train --data "${DATA}" --out "${OUT}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "moat detect train failed (${rc}):\n${out}\n${err}")
endif()
file(SHA256 "${OUT}" got)
file(SHA256 "${EXPECTED}" want)
if(NOT got STREQUAL want)
  message(FATAL_ERROR "the retrained model differs from ${EXPECTED}:\n  retrained ${got}\n  shipped   ${want}\n"
                      "rebuild it with: moat detect train --data ${DATA} --out ${EXPECTED}")
endif()
message("models/detection-default.bin reproduced bit for bit (sha256 ${got})")
