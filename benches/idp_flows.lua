-- wrk script of benches/idp.sh and benches/idp_memory.sh: each thread (of one connection) runs
-- code flows with PKCE through jwkit's login page, one step per request: GET /authorize (the
-- page), POST /authorize (the form, with the page's CSRF token and cookie, a new user name
-- each time), POST /token (the code and verifier). In "refresh" mode, after the first flow the
-- thread rotates its refresh token instead. Counts what completed; with LIMIT > 0 each thread
-- stops after LIMIT and appends a line to the file DONE_FILE (wrk itself runs for its -d; the
-- caller stops it with SIGINT once every thread has written its line).
--   wrk -t8 -c8 -s benches/idp_flows.lua URL -- flow|refresh LIMIT CHALLENGE VERIFIER [DONE_FILE]
local mode, limit, challenge, verifier, done_file = "flow", 0, "", "", nil
local q, step, csrf, code, rt, n = "", "page", "", "", "", 0
done_n, bad = 0, 0
local threads = {}
local client = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic YmVuY2g6YmVuY2gtc2VjcmV0",
}
local redirect = "http%3A%2F%2F127.0.0.1%3A9%2Fcb"
function setup(thread) threads[#threads + 1] = thread; thread:set("id", #threads) end
function init(args)
  mode, limit, challenge, verifier, done_file = args[1], tonumber(args[2]), args[3], args[4], args[5]
  q = "client_id=bench&response_type=code&scope=openid%20offline_access&redirect_uri=" .. redirect
    .. "&code_challenge=" .. challenge .. "&code_challenge_method=S256"
end
function request()
  if step == "page" then return wrk.format("GET", "/authorize?" .. q) end
  if step == "login" then
    n = n + 1
    local h = {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "jwkit_csrf=" .. csrf}
    return wrk.format("POST", "/authorize", h, q .. "&csrf=" .. csrf .. "&username=u" .. id .. "-" .. n)
  end
  if step == "token" then
    return wrk.format("POST", "/token", client, "grant_type=authorization_code&code=" .. code
      .. "&redirect_uri=" .. redirect .. "&code_verifier=" .. verifier)
  end
  return wrk.format("POST", "/token", client, "grant_type=refresh_token&refresh_token=" .. rt)
end
function response(status, headers, body)
  if status >= 400 then bad = bad + 1; step = "page"; return end
  if step == "page" then
    csrf = body:match('name="csrf" value="([^"]+)"') or ""; step = "login"
  elseif step == "login" then
    code = (headers["location"] or headers["Location"] or ""):match("code=([^&]+)") or ""; step = "token"
  else
    rt = body:match('"refresh_token":"([^"]+)"')
    if (mode == "flow" and step == "token") or (mode == "refresh" and step == "refresh") then
      done_n = done_n + 1
    end
    step = (mode == "refresh" and rt) and "refresh" or "page"
    if limit > 0 and done_n == limit and done_file then
      local f = io.open(done_file, "a"); f:write("done\n"); f:close()
    end
  end
end
function done(summary)
  local d, b = 0, 0
  for _, t in ipairs(threads) do d = d + t:get("done_n"); b = b + t:get("bad") end
  io.write(string.format("RESULT %.0f %d %d\n", d / (summary.duration / 1e6), b, d))
end
