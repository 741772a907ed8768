// Dataset builders shared by the engine benchmarks: users with chats and messages,
// written through the real engine API.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "agentstore/engine/engine.h"
#include "sample_records.h"

namespace agentstore::bench {

inline std::unique_ptr<fb::Uuid> FbId(const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); }

inline std::string TempPath(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("agentstore-bench-" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

inline fb::MessageT Message(const Uuid& chat, int i) { return SampleMessage(chat, i); }

struct Dataset {
  std::vector<Uuid> users;
  std::vector<Uuid> chats;  // one per user
  std::vector<Uuid> agents;
};

// `users` users with a 20-field-ish profile, one chat each with `messages` messages.
inline Dataset Load(Engine& e, int users, int messages_per_chat, int agents = 20) {
  Dataset d;
  for (int a = 0; a < agents; ++a) {
    fb::AgentT ag;
    ag.name = "agent " + std::to_string(a);
    ag.is_public = true;
    ag.model = "gpt-4o";
    d.agents.push_back(ToUuid(e.CreateAgent(Scope::Admin(), ag)->get()->id()));
  }
  for (int i = 0; i < users; ++i) {
    fb::UserT u = SampleUser("user" + std::to_string(i) + "@example.com", i);
    auto user = e.CreateUser(Scope::Service(), u);
    Uuid uid = ToUuid(user->get()->id());
    d.users.push_back(uid);
    fb::ChatT c;
    c.user_id = FbId(uid);
    c.title = "Planning the launch";
    Uuid chat = ToUuid(e.CreateChat(Scope::Service(), c)->get()->id());
    d.chats.push_back(chat);
    for (int m = 0; m < messages_per_chat; ++m) e.AppendMessage(Scope::Service(), Message(chat, m));
  }
  return d;
}

}  // namespace agentstore::bench
