#include <onair/control/gift_template.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::string through it
#include <string>

using namespace onair::control;
using json = nlohmann::json;

namespace {

json rose_json() {
    return json::parse(R"({
        "id": "rose-1",
        "icon": "assets/rose.png",
        "text": "{sender} sent {count} roses to {to}{note}",
        "fields": [
            {"name": "count", "type": "int", "min": 1, "max": 99},
            {"name": "to", "type": "text", "max_len": 16},
            {"name": "note", "type": "text", "optional": true}
        ],
        "style": {"colour": "#ff0000", "theme": "romance", "layout": "banner"}
    })");
}

gift_template rose() {
    gift_template t;
    std::string why;
    REQUIRE(parse_template(rose_json(), t, why) == errc::ok);
    return t;
}

/// parse_template's verdict on `j`, and that a refusal always says why.
errc parse(const json& j, std::string* why_out = nullptr) {
    gift_template t;
    std::string why;
    const errc e = parse_template(j, t, why);
    if (e != errc::ok) CHECK_FALSE(why.empty());
    if (why_out) *why_out = why;
    return e;
}

json with_field(json field) {
    json j = rose_json();
    j["fields"].push_back(std::move(field));
    return j;
}

struct gift_result {
    errc e;
    json clean;
    std::string text, why;
};

gift_result gift(const gift_template& t, const json& fields, std::string_view sender = "alice") {
    gift_result r;
    r.e = validate_gift(t, fields, sender, r.clean, r.text, r.why);
    if (r.e != errc::ok) CHECK_FALSE(r.why.empty());
    return r;
}

} // namespace

TEST_CASE("gift_template: a full template parses with every field, type and style") {
    const gift_template t = rose();
    CHECK(t.id == "rose-1");
    CHECK(t.icon == "assets/rose.png");
    CHECK(t.text == "{sender} sent {count} roses to {to}{note}");
    REQUIRE(t.fields.size() == 3);

    CHECK(t.fields[0].name == "count");
    CHECK(t.fields[0].type == gift_field::kind::integer);
    CHECK_FALSE(t.fields[0].optional);
    CHECK(t.fields[0].min == 1);
    CHECK(t.fields[0].max == 99);

    CHECK(t.fields[1].name == "to");
    CHECK(t.fields[1].type == gift_field::kind::text);
    CHECK(t.fields[1].max_len == 16);
    CHECK_FALSE(t.fields[1].optional);

    CHECK(t.fields[2].name == "note");
    CHECK(t.fields[2].optional);
    CHECK(t.fields[2].max_len == 64); // the default

    REQUIRE(t.style.size() == 3);
    json style = json::object();
    for (const auto& [k, v] : t.style) style[k] = v;
    CHECK(style == json{{"colour", "#ff0000"}, {"theme", "romance"}, {"layout", "banner"}});

    // The JSON form reads back as the same template.
    const json j = t.to_json();
    CHECK(j["fields"][0] == json{{"name", "count"}, {"type", "int"}, {"optional", false}, {"min", 1}, {"max", 99}});
    CHECK(j["fields"][1] == json{{"name", "to"}, {"type", "text"}, {"optional", false}, {"max_len", 16}});
    gift_template back;
    std::string why;
    REQUIRE(parse_template(j, back, why) == errc::ok);
    CHECK(back.to_json() == j);
}

TEST_CASE("gift_template: minimal templates parse (no fields, no style; {sender} only)") {
    gift_template t;
    std::string why;
    REQUIRE(parse_template(json{{"id", "heart"}, {"icon", ""}, {"text", "{sender} sent a heart"}}, t, why) == errc::ok);
    CHECK(t.fields.empty());
    CHECK(t.style.empty());
    // An integer field with the default range.
    REQUIRE(parse_template(json{{"id", "n"}, {"icon", "i"}, {"text", "{n}"}, {"fields", {{{"name", "n"}, {"type", "int"}}}}}, t, why) ==
            errc::ok);
    CHECK(t.fields.at(0).min == 0);
    CHECK(t.fields.at(0).max == 1'000'000);
}

TEST_CASE("gift_template: parse_template refuses each kind of bad template") {
    std::string why;
    SUBCASE("not an object") { CHECK(parse(json::array()) == errc::bad_request); }
    SUBCASE("bad id") {
        for (const json& id : {json(""), json("has space"), json("semi;colon"), json(std::string(65, 'a')), json(42)}) {
            json j = rose_json();
            j["id"] = id;
            CHECK(parse(j, &why) == errc::bad_request);
            CHECK(why.find("id") != std::string::npos);
        }
        json j = rose_json();
        j["id"] = std::string(64, 'a');
        CHECK(parse(j) == errc::ok);
        j.erase("id");
        CHECK(parse(j) == errc::bad_request);
    }
    SUBCASE("bad icon") {
        json j = rose_json();
        j["icon"] = std::string(513, 'i');
        CHECK(parse(j) == errc::bad_request);
        j.erase("icon");
        CHECK(parse(j) == errc::bad_request);
    }
    SUBCASE("missing, empty or too long text") {
        json j = rose_json();
        j.erase("text");
        CHECK(parse(j, &why) == errc::bad_request);
        CHECK(why.find("text") != std::string::npos);
        j["text"] = "";
        CHECK(parse(j) == errc::bad_request);
        j["text"] = std::string(257, 't');
        CHECK(parse(j) == errc::bad_request);
        j["text"] = 7;
        CHECK(parse(j) == errc::bad_request);
    }
    SUBCASE("unknown or unclosed placeholder") {
        json j = rose_json();
        j["text"] = "{sender} sent {colour} roses";
        CHECK(parse(j, &why) == errc::bad_request);
        CHECK(why.find("{colour}") != std::string::npos);
        j["text"] = "{sender} sent {count";
        CHECK(parse(j, &why) == errc::bad_request);
        CHECK(why.find("unclosed") != std::string::npos);
    }
    SUBCASE("duplicate field") {
        CHECK(parse(with_field({{"name", "count"}, {"type", "text"}}), &why) == errc::bad_request);
        CHECK(why.find("twice") != std::string::npos);
    }
    SUBCASE("field named sender, or with a bad name") {
        CHECK(parse(with_field({{"name", "sender"}, {"type", "text"}}), &why) == errc::bad_request);
        CHECK(why.find("sender") != std::string::npos);
        CHECK(parse(with_field({{"name", "a b"}, {"type", "text"}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", ""}, {"type", "text"}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", std::string(33, 'f')}, {"type", "text"}})) == errc::bad_request);
        CHECK(parse(with_field({{"type", "text"}})) == errc::bad_request);
        CHECK(parse(with_field(json("count"))) == errc::bad_request); // a field must be an object
    }
    SUBCASE("bad type") {
        CHECK(parse(with_field({{"name", "x"}, {"type", "float"}}), &why) == errc::bad_request);
        CHECK(why.find("type") != std::string::npos);
        CHECK(parse(with_field({{"name", "x"}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", "x"}, {"type", 1}})) == errc::bad_request);
    }
    SUBCASE("bad bounds") {
        // (max_len must be an unsigned JSON number, as every non-negative number read from text is.)
        CHECK(parse(with_field({{"name", "x"}, {"type", "int"}, {"min", 10}, {"max", 9}}), &why) == errc::bad_request);
        CHECK(why.find("min > max") != std::string::npos);
        CHECK(parse(with_field({{"name", "x"}, {"type", "int"}, {"min", 10}, {"max", 10}})) == errc::ok);
        CHECK(parse(with_field({{"name", "x"}, {"type", "int"}, {"min", 2'000'000}})) == errc::bad_request); // over the default max
        CHECK(parse(with_field({{"name", "x"}, {"type", "int"}, {"min", 1.5}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", "x"}, {"type", "int"}, {"max", "9"}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", "x"}, {"type", "text"}, {"max_len", 0u}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", "x"}, {"type", "text"}, {"max_len", 257u}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", "x"}, {"type", "text"}, {"max_len", -1}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", "x"}, {"type", "text"}, {"max_len", 1.5}})) == errc::bad_request);
        CHECK(parse(with_field({{"name", "x"}, {"type", "text"}, {"max_len", 256u}})) == errc::ok);
        CHECK(parse(with_field({{"name", "x"}, {"type", "text"}, {"optional", "yes"}})) == errc::bad_request);
    }
    SUBCASE("too many fields, or fields not an array") {
        json j = rose_json();
        j["text"] = "{sender} sent {f0} and {f7}";
        j["fields"] = json::array();
        for (int i = 0; i < 8; ++i) {
            std::string name = "f";
            name += static_cast<char>('0' + i); // (not "f" + to_string: GCC 12 warns falsely at -O2)
            j["fields"].push_back({{"name", name}, {"type", "text"}});
        }
        CHECK(parse(j) == errc::ok);
        j["fields"].push_back({{"name", "f8"}, {"type", "text"}});
        CHECK(parse(j, &why) == errc::bad_request);
        CHECK(why.find("at most 8") != std::string::npos);
        j["fields"] = json::object();
        CHECK(parse(j) == errc::bad_request);
    }
    SUBCASE("bad style key or value") {
        json j = rose_json();
        j["style"]["font"] = "serif";
        CHECK(parse(j, &why) == errc::bad_request);
        CHECK(why.find("style keys") != std::string::npos);
        j = rose_json();
        j["style"]["colour"] = 255;
        CHECK(parse(j, &why) == errc::bad_request);
        CHECK(why.find("style values") != std::string::npos);
        j["style"]["colour"] = std::string(65, 'c');
        CHECK(parse(j) == errc::bad_request);
        j["style"]["colour"] = std::string(64, 'c');
        CHECK(parse(j) == errc::ok);
        j["style"] = json::array({"red"});
        CHECK(parse(j) == errc::bad_request);
    }
}

TEST_CASE("gift_template: validate_gift renders the text from valid fields") {
    const gift_template t = rose();
    const auto r = gift(t, {{"count", 3}, {"to", "bob"}, {"note", " <3"}});
    REQUIRE(r.e == errc::ok);
    CHECK(r.text == "alice sent 3 roses to bob <3");
    CHECK(r.clean == json{{"count", 3}, {"to", "bob"}, {"note", " <3"}});

    // {sender} is whoever sends; the same placeholder may appear twice.
    gift_template echo;
    std::string why;
    REQUIRE(parse_template(json{{"id", "e"}, {"icon", ""}, {"text", "{sender}:{n}/{n} from {sender}"}, {"fields", {{{"name", "n"}, {"type", "int"}}}}},
                           echo, why) == errc::ok);
    const auto e = gift(echo, {{"n", 42}}, "carol");
    REQUIRE(e.e == errc::ok);
    CHECK(e.text == "carol:42/42 from carol");
}

TEST_CASE("gift_template: an optional field may be left out") {
    const gift_template t = rose();
    const auto r = gift(t, {{"count", 1}, {"to", "bob"}});
    REQUIRE(r.e == errc::ok);
    CHECK(r.text == "alice sent 1 roses to bob"); // its placeholder renders as nothing
    CHECK(r.clean == json{{"count", 1}, {"to", "bob"}});
    CHECK_FALSE(r.clean.contains("note"));
}

TEST_CASE("gift_template: validate_gift refuses fields that do not match") {
    const gift_template t = rose();
    SUBCASE("missing required field") {
        const auto r = gift(t, {{"count", 3}});
        CHECK(r.e == errc::bad_fields);
        CHECK(r.why.find("missing field 'to'") != std::string::npos);
    }
    SUBCASE("unknown extra field") {
        const auto r = gift(t, {{"count", 3}, {"to", "bob"}, {"gold", 100}});
        CHECK(r.e == errc::bad_fields);
        CHECK(r.why.find("gold") != std::string::npos);
    }
    SUBCASE("wrong types") {
        CHECK(gift(t, {{"count", "3"}, {"to", "bob"}}).e == errc::bad_fields);
        CHECK(gift(t, {{"count", 3.0}, {"to", "bob"}}).e == errc::bad_fields);
        CHECK(gift(t, {{"count", 3}, {"to", 7}}).e == errc::bad_fields);
        CHECK(gift(t, {{"count", true}, {"to", "bob"}}).e == errc::bad_fields);
        CHECK(gift(t, json::array({3, "bob"})).e == errc::bad_fields);
    }
    SUBCASE("text too long") {
        CHECK(gift(t, {{"count", 3}, {"to", std::string(16, 'b')}}).e == errc::ok);
        const auto r = gift(t, {{"count", 3}, {"to", std::string(17, 'b')}});
        CHECK(r.e == errc::bad_fields);
        CHECK(r.why.find("16") != std::string::npos);
    }
    SUBCASE("integer out of range") {
        CHECK(gift(t, {{"count", 1}, {"to", "b"}}).e == errc::ok);
        CHECK(gift(t, {{"count", 99}, {"to", "b"}}).e == errc::ok);
        CHECK(gift(t, {{"count", 0}, {"to", "b"}}).e == errc::bad_fields);
        CHECK(gift(t, {{"count", 100}, {"to", "b"}}).e == errc::bad_fields);
        CHECK(gift(t, {{"count", -5}, {"to", "b"}}).e == errc::bad_fields);
        const auto r = gift(t, {{"count", 1'000'000'000'000LL}, {"to", "b"}});
        CHECK(r.e == errc::bad_fields);
        CHECK(r.why.find("1..99") != std::string::npos);
    }
}

TEST_CASE("gift_template: clean holds only the template's fields, whatever came in") {
    const gift_template t = rose();
    json clean = {{"stale", "from before"}};
    std::string text, why;
    REQUIRE(validate_gift(t, {{"to", "bob"}, {"count", 5}}, "alice", clean, text, why) == errc::ok);
    CHECK(clean == json{{"count", 5}, {"to", "bob"}});
    CHECK(clean.size() == 2);
    for (const auto& [k, v] : clean.items()) {
        bool in_template = false;
        for (const auto& f : t.fields) in_template = in_template || f.name == k;
        CHECK(in_template);
        (void)v;
    }
}
