#pragma once
// Every numeric weight and threshold of the detection engine by name, so that a deployment
// (the [detection.settings] table of the gateway config), the benchmark (`moat-bench traffic
// run --set name=value`) and the documentation (docs/detection.md) all speak of the same
// settings. A setting is "stage.field" (e.g. "cohort.z_threshold") or "engine.field".

#include <string>
#include <string_view>
#include <vector>

#include "detect/engine.h"
#include "moat/status.h"

namespace moat::detect {

struct SettingInfo {
  std::string name;       // "cohort.z_threshold"
  double* value;          // into the DetectionConfig it was listed from
  std::string_view help;  // what it does
};

// The settings of `config` (pointers into it; valid while it lives), in documentation order.
std::vector<SettingInfo> ListSettings(DetectionConfig& config);

// Sets one setting by name. InvalidArgument for an unknown name or a non-finite value.
Status ApplySetting(DetectionConfig& config, std::string_view name, double value);

// Parses "name=value" and applies it.
Status ApplySetting(DetectionConfig& config, std::string_view assignment);

}  // namespace moat::detect
