// Dataset builders shared by the engine benchmarks: users with chats and messages,
// written through the real engine API.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "agentstore/engine/engine.h"

namespace agentstore::bench {

inline std::unique_ptr<fb::Uuid> FbId(const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); }

inline std::string TempPath(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("agentstore-bench-" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

inline fb::MessageT Message(const Uuid& chat, int i) {
  fb::MessageT m;
  m.chat_id = FbId(chat);
  m.role = i % 2 ? fb::MessageRole::assistant : fb::MessageRole::user;
  m.parts = R"([{"type":"text","text":"This is message number )" + std::to_string(i) +
            R"( of a typical chat turn, about a hundred and fifty bytes of text content."}])";
  m.model_used = i % 2 ? "gpt-4o-mini" : "";
  m.input_tokens = 120 + i % 50;
  m.output_tokens = i % 2 ? 300 : 0;
  m.cost = 450;
  return m;
}

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
    fb::UserT u;
    u.email = "user" + std::to_string(i) + "@example.com";
    u.full_name = "User Number " + std::to_string(i);
    u.avatar_url = "https://cdn.example.com/avatars/" + std::to_string(i) + ".png";
    u.job_title = "Engineer";
    u.department = "R&D";
    u.organization = "Example Corp";
    u.preferences = R"({"theme":"dark","language":"en","timezone":"UTC"})";
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
