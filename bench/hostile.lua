-- wrk script: cycles through hostile requests (SPEC section 5b), each cheap to send.
-- $TOKEN is a USER's token (some requests use it, some forge their own).
local token = os.getenv("TOKEN") or ""
local huge_format = string.rep("yyyy MMMM ", 10000)          -- 100 KB
local format64 = string.rep("MMMM", 16)                        -- at the cap
local history = "books{copies{checkoutHistory{checkoutDate(format:\\\"" .. format64 .. "\\\",locale:\\\"fr\\\")}}}"
local aliased = {}
for i = 1, 15 do aliased[#aliased + 1] = "a" .. i .. ":" .. history end
local sorts = {}
for i = 1, 20 do sorts[#sorts + 1] = '{"field":"checkoutDate"}' end
local deep = string.rep("books{copies{checkoutHistory{patron{checkOuts{", 4) .. "id" .. string.rep("}}}}}", 4)

local bodies = {
  -- The 100 KB date format that once made a 156 MB reply.
  { body = '{"query":"query($f:String){books{copies{checkoutHistory{checkoutDate(format:$f,locale:\\"fr\\")}}}}","variables":{"f":"' .. huge_format .. '"}}' },
  -- The largest answer the caps allow: 15 aliases of every history at a 64-token format.
  { body = '{"query":"{' .. table.concat(aliased, " ") .. '}"}' },
  -- A sort naming one field 20 times.
  { body = '{"query":"query($s:[SortObject!]){checkoutFeed(sort:$s,next:5){entries{id}}}","variables":{"s":[' .. table.concat(sorts, ",") .. ']}}' },
  -- New snapshots, one per filter: the row cap and the reuse bound them.
  { body = '{"query":"{checkoutFeed(next:5,sort:[{field:userEmail}]){entries{id}}}"}' },
  -- Every checkout, no page size given (the default page applies).
  { body = '{"query":"{checkouts{id checkoutDate}}"}', auth = true },
  -- Nesting past the depth limit.
  { body = '{"query":"{' .. deep .. '}"}' },
  -- A forged token.
  { body = '{"query":"{books{title}}"}', forged = true },
  -- A 2 MiB body (413).
  { body = '{"query":"{books{title}}","pad":"' .. string.rep("x", 2 * 1024 * 1024) .. '"}' },
}

local i = 0
request = function()
  i = i + 1
  local b = bodies[(i % #bodies) + 1]
  local headers = { ["Content-Type"] = "application/json" }
  if b.auth and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  if b.forged then headers["Authorization"] = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0." end
  return wrk.format("POST", "/graphql", headers, b.body)
end
