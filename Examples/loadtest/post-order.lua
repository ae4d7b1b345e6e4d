-- wrk script: POST /orders with a small JSON body, spread over 1000 customers and the 100 seeded items.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0

request = function()
    counter = counter + 1
    local body = string.format('{"customer":"wrk-%d","item":"item-%d","quantity":1}', counter % 1000,
        math.random(1, 100))
    return wrk.format(nil, "/orders", nil, body)
end
