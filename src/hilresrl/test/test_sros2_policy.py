"""The shipped SROS2 policy covers every topic and service of the suite's nodes, and no more."""

import ast
import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
POLICY = ROOT / 'config' / 'sros2' / 'hilresrl.policy.xml'
XINCLUDE = '{http://www.w3.org/2001/XInclude}include'
CREATE = {'create_publisher': 'publish', 'create_subscription': 'subscribe',
          'create_service': 'reply', 'create_client': 'request'}

# Each file that creates ROS endpoints -> the profile (node) whose rights it uses.
NODE_FILES = {
    'hilresrl_sim/sim_cell_node.py': 'sim_cell',
    'hilresrl_sim/simulated_operator_node.py': 'simulated_operator',
    'hilresrl_policy/base_policy_node.py': 'base_policy',
    'hilresrl_policy/residual_policy_node.py': 'residual_policy',
    'hilresrl_teleop/intervention_arbiter_node.py': 'intervention_arbiter',
    'hilresrl_teleop/command_output.py': 'intervention_arbiter',
    'hilresrl_episodes/episode_manager_node.py': 'episode_manager',
    'hilresrl_teleop/spacemouse_node.py': 'spacenav',
    'hilresrl_teleop/ee_pose_node.py': 'ee_pose',
    'hilresrl_teleop/keyboard_node.py': 'keyboard',
    'hilresrl_teleop/say_node.py': 'operator',
    'hilresrl_learner/learner_node.py': 'learner',
    'hilresrl_recording/recorder_node.py': 'recorder',
}
# Files whose endpoints are all named at run time (checked on the running graph below), and the
# bag player, a tool that republishes recorded topics and has no enclave: it is refused every
# command topic under SROS2 as it should be.
NAMED_AT_RUN_TIME = {'hilresrl_common/observation_topics.py',
                     'hilresrl_recording/bag_player_node.py'}
# Processes of several nodes (hilresrl.graph's hosted nodes): their enclave has each one's profile.
PROCESSES = {'residual_in_arbiter': ('residual_policy', 'intervention_arbiter')}
# What every node has (common/node.xml): logging, parameters, type descriptions.
INFRASTRUCTURE = ('/rosout', '/parameter_events')
INFRASTRUCTURE_SERVICES = ('describe_parameters', 'get_parameter_types', 'get_parameters',
                           'list_parameters', 'set_parameters', 'set_parameters_atomically',
                           'get_type_description')


def _profile_children(element, directory):
    for child in element:
        if child.tag == XINCLUDE:  # href="common/node.xml" xpointer="xpointer(/profile/*)"
            included = ElementTree.parse(directory / child.get('href')).getroot()
            yield from _profile_children(included, directory)
        else:
            yield child


def load_policy(path=POLICY):
    """Return {node: {'publish'|'subscribe'|'reply'|'request': set of names}} of a policy."""
    rights, profiles = {}, {}
    for enclave in ElementTree.parse(path).getroot().iter('enclave'):
        for profile in enclave.iter('profile'):
            node = profile.get('node')
            process = enclave.get('path')[len('/hilresrl/'):]
            assert process == node or node in PROCESSES.get(process, ()), \
                f'{node} in the enclave of {process}: one enclave per node or per process'
            # A node of a process has the rights it has alone: the same profile, not another.
            text = ElementTree.tostring(profile).split()
            assert profiles.setdefault(node, text) == text, f'profiles of {node} differ'
            allowed = rights.setdefault(node, {kind: set() for kind in CREATE.values()})
            for group in _profile_children(profile, path.parent):
                for kind in allowed:
                    if group.get(kind) == 'ALLOW':
                        allowed[kind].update(item.text.strip() for item in group)
    return rights


def _literal_names(path):
    """Yield (kind, name) of every create_* call whose name is a literal or module constant."""
    tree = ast.parse(path.read_text())
    constants = {target.id: node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 for target in node.targets if isinstance(target, ast.Name)}
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr in CREATE):
            continue
        argument = call.args[1] if len(call.args) > 1 else next(
            (keyword.value for keyword in call.keywords
             if keyword.arg in ('topic', 'srv_name')), None)
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            yield CREATE[call.func.attr], argument.value
        elif isinstance(argument, ast.Name) and isinstance(constants.get(argument.id), str):
            yield CREATE[call.func.attr], constants[argument.id]


def test_every_endpoint_named_in_the_node_files_is_in_the_policy():
    rights = load_policy()
    creating = {str(path.relative_to(ROOT / 'src')).replace(os.sep, '/').split('/', 1)[1]
                for path in (ROOT / 'src').glob('hilresrl_*/hilresrl_*/*.py')
                if any(f'.{name}(' in path.read_text() for name in CREATE)}
    unknown = creating - set(NODE_FILES) - NAMED_AT_RUN_TIME
    assert not unknown, f'files that create endpoints but have no profile here: {unknown}'
    missing = []
    for relative, node in NODE_FILES.items():
        package = relative.split('/')[0]
        for kind, name in _literal_names(ROOT / 'src' / package / relative):
            if name not in rights[node][kind]:
                missing.append(f'{node} may not {kind} {name} ({relative})')
    assert not missing, 'config/sros2/hilresrl.policy.xml lacks:\n' + '\n'.join(missing)


def test_only_the_arbiter_commands_the_robot_only_the_learner_sends_weights():
    rights = load_policy()

    def who(kind, name):
        return sorted(node for node, allowed in rights.items() if name in allowed[kind])

    for command in ('servo/delta_twist_cmds', 'gripper/command', 'target_pose',
                    'joint_trajectory_controller/joint_trajectory'):
        assert who('publish', command) == ['intervention_arbiter']
    assert who('publish', 'policy_weights') == who('publish', 'latent_weights') == ['learner']
    assert who('request', 'release_estop') == ['keyboard', 'operator']
    assert who('reply', 'release_estop') == ['intervention_arbiter']
    assert who('request', 'load_checkpoint') == who('request', 'load_bag') == ['operator']
    assert who('publish', 'proposed_action') == ['residual_policy']
    assert who('publish', 'spacenav/twist') == ['simulated_operator', 'spacenav']


def test_a_process_of_several_nodes_has_an_enclave_with_the_profile_of_each():
    load_policy()  # each profile there equal to the node's own
    enclaves = {enclave.get('path'): sorted(profile.get('node')
                                            for profile in enclave.iter('profile'))
                for enclave in ElementTree.parse(POLICY).getroot().iter('enclave')}
    for process, nodes in PROCESSES.items():
        assert enclaves[f'/hilresrl/{process}'] == sorted(nodes)
        assert all(enclaves[f'/hilresrl/{node}'] == [node] for node in nodes)


def _resolve(name, namespace):
    return name[len(namespace) + 1:] if name.startswith(namespace + '/') else name


def test_the_running_train_graph_uses_nothing_the_policy_lacks(probe, launch_process):
    namespace = '/sros2cell'
    launched = launch_process(['hilresrl', 'launch', 'train', f'namespace:={namespace[1:]}',
                               'base_policy:=scripted', 'operator:=true'])
    from hilresrl.graph import build_graph
    expected = {spec.name for spec in build_graph('train', {'operator': 'true'})
                if not spec.command}
    node = probe.node

    def snapshot():
        return {name: {
            'publish': node.get_publisher_names_and_types_by_node(name, namespace),
            'subscribe': node.get_subscriber_names_and_types_by_node(name, namespace),
            'reply': node.get_service_names_and_types_by_node(name, namespace),
            'request': node.get_client_names_and_types_by_node(name, namespace)}
            for name, node_namespace in node.get_node_names_and_namespaces()
            if node_namespace == namespace}

    def relative_names(endpoints):
        return {_resolve(endpoint, namespace) for endpoint, _ in endpoints}

    def discovered():
        # Discovery brings a node's publishers, services and clients separately and in any
        # order, so wait for a named endpoint of each kind the checks below rely on.
        seen = snapshot()
        return expected <= set(seen) and 'learner_status' in relative_names(
            seen['learner']['publish']) and 'save_checkpoint' in relative_names(
            seen['learner']['reply']) and 'executed_action' in relative_names(
            seen['intervention_arbiter']['publish'])

    probe.wait_for(lambda: launched.process.poll() is not None or discovered(), 120,
                   'every node of the train graph')
    assert launched.process.poll() is None, launched.output
    seen = snapshot()
    rights = load_policy()
    missing = []
    for name in sorted(expected):
        for kind, endpoints in seen[name].items():
            for endpoint, _ in endpoints:
                relative = _resolve(endpoint, namespace)
                if endpoint in INFRASTRUCTURE or relative.split('/')[-1] in \
                        INFRASTRUCTURE_SERVICES and relative.startswith(name + '/'):
                    continue
                if relative not in rights[name][kind]:
                    missing.append(f'{name} may not {kind} {relative}')
    assert not missing, 'config/sros2/hilresrl.policy.xml lacks:\n' + '\n'.join(missing)
    assert seen['intervention_arbiter']['publish'] and seen['learner']['reply']
    assert launched.interrupt(timeout_s=60) == 0, launched.output


def test_a_keystore_is_generated_from_the_policy(tmp_path):
    if shutil.which('ros2') is None or subprocess.run(
            ['ros2', 'security', '--help'], capture_output=True).returncode != 0:
        pytest.skip('sros2 (ros2 security) is not installed here: it comes with a ROS 2 '
                    'distribution (ros-<distro>-sros2), not with the PyPI wheels')
    keystore = tmp_path / 'keystore'
    subprocess.run(['ros2', 'security', 'create_keystore', str(keystore)], check=True,
                   timeout=120)
    for name in list(load_policy()) + list(PROCESSES):
        enclave = f'/hilresrl/{name}'
        subprocess.run(['ros2', 'security', 'create_enclave', str(keystore), enclave],
                       check=True, timeout=120)
        subprocess.run(['ros2', 'security', 'create_permission', str(keystore), enclave,
                        str(POLICY)], check=True, timeout=120)
        assert (keystore / 'enclaves' / 'hilresrl' / name / 'permissions.p7s').is_file()


@pytest.mark.parametrize('job', ['train', 'eval'])
@pytest.mark.parametrize('residual_in_arbiter', ['false', 'true'])
def test_with_security_on_the_launch_files_put_each_node_in_its_enclave(
        job, residual_in_arbiter):
    import types

    from hilresrl.graph import build_graph
    from hilresrl.launch_description import _enclave

    rights = load_policy()
    secure = types.SimpleNamespace(environment={'ROS_SECURITY_ENABLE': 'true'})
    arguments = {'residual_in_arbiter': residual_in_arbiter}
    if job == 'train':
        arguments['operator'] = 'true'
    for spec in build_graph(job, arguments):
        if spec.command:
            continue
        assert _enclave(spec, secure) == ['--enclave', f'/hilresrl/{spec.name}']
        if spec.hosted:  # a process of several nodes: its enclave has a profile for each
            assert tuple(node.name for node in spec.hosted) == PROCESSES[spec.name]
        else:
            assert spec.name in rights, f'no enclave for {spec.name} in the policy'
    assert _enclave(spec, types.SimpleNamespace(environment={})) == []
