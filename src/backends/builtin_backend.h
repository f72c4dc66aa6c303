#pragma once
// BuiltinBackend: serves completions from the in-process model (model::BuiltinEngine), with
// each account's keyed watermark as a stage of the sampler chain. Generation is CPU work, so it
// runs on a small thread pool; streamed pieces travel back to the connection's thread as they
// are sampled.

#include <memory>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include "common/random.h"
#include "model/builtin_engine.h"
#include "moat/clock.h"
#include "moat/status.h"
#include "server/backend.h"
#include "server/config.h"
#include "watermark/watermark_key.h"

namespace moat::backends {

class BuiltinBackend final : public server::Backend {
 public:
  // Loads the model file and the watermark master secret (created when missing).
  // `clock` dates the responses; `random` seeds the sampling of requests that name no seed.
  static moat::StatusOr<std::unique_ptr<BuiltinBackend>> Create(const server::ModelConfig& model,
                                                                const server::WatermarkSettings& wm,
                                                                const std::string& secret_path,
                                                                const Clock* clock, Random* random);
  ~BuiltinBackend() override;

  boost::asio::awaitable<server::BackendResult> Handle(server::BackendCall& call) override;

 private:
  BuiltinBackend(const server::ModelConfig& model, std::unique_ptr<model::BuiltinEngine> engine,
                 watermark::MasterSecret secret, bool watermark_enabled, uint32_t epoch,
                 const Clock* clock, Random* random);

  const server::ModelConfig config_;
  std::unique_ptr<model::BuiltinEngine> engine_;
  const watermark::MasterSecret secret_;
  const bool watermark_enabled_;
  const uint32_t epoch_;
  const Clock* const clock_;
  Random* const random_;
  boost::asio::thread_pool pool_;
};

// Converts the gateway's watermark settings to the library's config.
moat::StatusOr<watermark::WatermarkConfig> ToWatermarkConfig(const server::WatermarkSettings& settings);

}  // namespace moat::backends
