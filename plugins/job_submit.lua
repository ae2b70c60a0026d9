--[[
job_submit.lua: Slurm's submit-time hook for placer (JobSubmitPlugins=lua).

It asks a running `placer serve` daemon over a unix socket (one JSON line out, one back) and
never starts Python itself. Fail-open: if the daemon is absent, slower than BUDGET_S in total, or
answers garbage, the job goes in unchanged and one log line says why. Needs Debian's lua-socket
and lua-cjson. Edit the two settings below to match `placer serve --socket` and its budget.
--]]
local SOCKET_PATH = "/run/placer/placer.sock"
local BUDGET_S = 0.05

local have_socket, unix = pcall(require, "socket.unix")
local have_gettime, socket = pcall(require, "socket")
local have_json, cjson = pcall(require, "cjson")

-- fail-opens since the last answered request; reported to the daemon, which counts them
placer_fail_open = placer_fail_open or 0

local function fail_open(name, why)
	placer_fail_open = placer_fail_open + 1
	slurm.log_info("placer: job %s goes in unchanged (fail-open): %s", tostring(name), tostring(why))
	return slurm.SUCCESS
end

local function now()
	if have_gettime and socket.gettime then return socket.gettime() end
	return os.time()
end

local function str(v)
	if v == nil then return nil end
	return tostring(v)
end

local function num(v)
	-- Slurm's NO_VAL / INFINITE markers mean "not given"
	if v == nil or v >= 4294967294 then return nil end
	return v
end

function slurm_job_submit(job_desc, part_list, submit_uid)
	local name = job_desc.name
	if not (have_socket and have_json) then
		return fail_open(name, "lua-socket or lua-cjson is not installed")
	end
	local request = {
		v = 1,
		name = str(name),
		user = submit_uid,
		partition = str(job_desc.partition),
		comment = str(job_desc.comment),
		features = str(job_desc.features),
		tres_per_node = str(job_desc.tres_per_node),
		tres_per_job = str(job_desc.tres_per_job),
		min_nodes = num(job_desc.min_nodes),
		max_nodes = num(job_desc.max_nodes),
		exc_nodes = str(job_desc.exc_nodes),
		req_nodes = str(job_desc.req_nodes),
		shared = num(job_desc.shared),
		time_limit = num(job_desc.time_limit),
		qos = str(job_desc.qos),
		fail_open = placer_fail_open,
	}
	local deadline = now() + BUDGET_S
	local make = unix.stream or unix
	local conn = make()
	conn:settimeout(BUDGET_S)
	local ok, err = conn:connect(SOCKET_PATH)
	if not ok then
		conn:close()
		return fail_open(name, "cannot reach placer at " .. SOCKET_PATH .. ": " .. tostring(err))
	end
	conn:settimeout(math.max(deadline - now(), 0.001))
	ok, err = conn:send(cjson.encode(request) .. "\n")
	if not ok then
		conn:close()
		return fail_open(name, "send failed: " .. tostring(err))
	end
	conn:settimeout(math.max(deadline - now(), 0.001))
	local line
	line, err = conn:receive("*l")
	conn:close()
	if not line then
		return fail_open(name, "no answer within " .. BUDGET_S .. " s: " .. tostring(err))
	end
	local decoded, answer = pcall(cjson.decode, line)
	if not decoded or type(answer) ~= "table" or type(answer.action) ~= "string" then
		return fail_open(name, "garbled answer: " .. string.sub(line, 1, 80))
	end
	placer_fail_open = 0
	if answer.action == "advise" then
		if type(answer.req_nodes) == "string" then
			job_desc.req_nodes = answer.req_nodes
			if type(answer.min_nodes) == "number" then
				job_desc.min_nodes = answer.min_nodes
			end
		end
		if type(answer.req_switch) == "number" then
			job_desc.req_switch = answer.req_switch
			job_desc.wait4switch = answer.wait4switch or 300
		end
	elseif answer.action == "steer" then
		job_desc.priority = 0
		job_desc.comment = (job_desc.comment and (job_desc.comment .. " ") or "") .. "placer:steer"
	end
	slurm.log_info("placer: job %s: %s", tostring(name), tostring(answer.reason or answer.action))
	return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	return slurm.SUCCESS
end

slurm.log_info("placer: job_submit.lua loaded (socket %s, budget %s s)", SOCKET_PATH, BUDGET_S)
return slurm.SUCCESS
