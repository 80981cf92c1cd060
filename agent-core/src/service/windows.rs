//! The SCM side (Windows): install/uninstall/start/stop through the `windows-service` crate,
//! and the service entry that runs the daemon.
//!
//! Invariants:
//! - The registered command line is the absolute path of the running executable plus
//!   `service run` and, when given at install, `-c <absolute path>` (the SCM starts services
//!   in `System32`, where a relative path would name another file). The configuration is
//!   loaded once at install, so a broken file is refused then (exit 3), not at every boot.
//! - A service has no console: without `[log] file` its logs go to `agent.log` next to the
//!   default configuration file (`%ProgramData%\Armadito-Agent\agent.log`).
//! - The service reports `Stopped` with the agent's exit code as a service-specific code
//!   (0 = no error), and the failure actions restart it after a failure that is not a crash
//!   too (`set_failure_actions_on_non_crash_failures`), as systemd's `Restart=on-failure`.

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use windows_service::service::{
    Service, ServiceAccess, ServiceAction as FailureAction, ServiceActionType, ServiceControl,
    ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_FAILED_SERVICE_CONTROLLER_CONNECT, ERROR_SERVICE_ALREADY_RUNNING,
    ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_EXISTS, ERROR_SERVICE_NOT_ACTIVE,
};

use super::SERVICE_NAME;
use crate::cli::{Cli, GlobalOptions, ServiceAction, exit};
use crate::config::Config;
use crate::daemon::Stop;
use crate::session::{AgentError, Context};

const DISPLAY_NAME: &str = "Armadito Agent";
const DESCRIPTION: &str =
    "Runs and watches antivirus software for a GLPI server (Armadito plugin): the agent's daemon.";
/// How long `service start` waits for Running, and the start-up hint given to the SCM.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long a stop may take: cancelling a scan, reporting it and flushing the outbox. Also the
/// pre-shutdown timeout, so Windows shutting down leaves the daemon that time.
const STOP_WAIT: Duration = Duration::from_secs(90);

pub(super) fn control(action: ServiceAction, opts: &GlobalOptions) -> Result<(), AgentError> {
    match action {
        ServiceAction::Install => install(opts),
        ServiceAction::Uninstall => uninstall(),
        ServiceAction::Start => start(),
        ServiceAction::Stop => stop(),
        ServiceAction::Run => Err(AgentError::CommandLine(
            "internal: `service run` is handled before dispatch".into(),
        )),
    }
}

/// A failed SCM call as exit 1, with the usual cause spelled out.
fn scm_error(what: &str, e: windows_service::Error) -> AgentError {
    let hint = match os_error(&e) {
        Some(ERROR_ACCESS_DENIED) => " (run it from an elevated, administrator prompt)",
        _ => "",
    };
    AgentError::Task(format!("{what}: {e}{hint}"))
}

fn os_error(e: &windows_service::Error) -> Option<u32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error().and_then(|c| u32::try_from(c).ok()),
        _ => None,
    }
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, AgentError> {
    ServiceManager::local_computer(None::<&str>, access)
        .map_err(|e| scm_error("cannot open the Service Control Manager", e))
}

/// Opens the installed service; `Ok(None)` when it is not installed.
fn open(access: ServiceAccess) -> Result<Option<Service>, AgentError> {
    match manager(ServiceManagerAccess::CONNECT)?.open_service(SERVICE_NAME, access) {
        Ok(s) => Ok(Some(s)),
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => Ok(None),
        Err(e) => Err(scm_error("cannot open the service", e)),
    }
}

fn not_installed() -> AgentError {
    AgentError::Task(format!(
        "the {SERVICE_NAME} service is not installed: run `armadito-agent service install` first"
    ))
}

fn install(opts: &GlobalOptions) -> Result<(), AgentError> {
    let exe = std::env::current_exe()
        .map_err(|e| AgentError::Task(format!("cannot find the agent's executable: {e}")))?;
    let mut launch_arguments: Vec<OsString> = vec!["service".into(), "run".into()];
    let mut check = GlobalOptions::default();
    if let Some(config) = &opts.config {
        let absolute = std::path::absolute(config)
            .map_err(|e| AgentError::CommandLine(format!("-c {}: {e}", config.display())))?;
        launch_arguments.extend(["-c".into(), absolute.clone().into_os_string()]);
        check.config = Some(absolute);
    }
    // What the service will load (file only: the environment of this prompt is not the
    // service's), refused now rather than at every start.
    Config::load(&check)?;

    let manager = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments,
        dependencies: vec![],
        // LocalSystem: scans must read every file, as root does on Linux.
        account_name: None,
        account_password: None,
    };
    let service = match manager.create_service(
        &info,
        ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS,
    ) {
        Ok(s) => s,
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_EXISTS) => {
            return Err(AgentError::Task(format!(
                "the {SERVICE_NAME} service is already installed (`armadito-agent service uninstall` first to change it)"
            )));
        }
        Err(e) => return Err(scm_error("cannot create the service", e)),
    };
    let configure = || -> windows_service::Result<()> {
        service.set_description(DESCRIPTION)?;
        let restart = |secs| FailureAction {
            action_type: ServiceActionType::Restart,
            delay: Duration::from_secs(secs),
        };
        service.update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(10), restart(10), restart(60)]),
        })?;
        service.set_failure_actions_on_non_crash_failures(true)?;
        service.set_preshutdown_timeout(STOP_WAIT)
    };
    configure().map_err(|e| scm_error("service created, but configuring it failed", e))?;
    println!(
        "service {SERVICE_NAME} installed (automatic start, LocalSystem): start it with `armadito-agent service start`"
    );
    Ok(())
}

fn uninstall() -> Result<(), AgentError> {
    let Some(service) =
        open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?
    else {
        println!("service {SERVICE_NAME} is not installed: nothing to do");
        return Ok(());
    };
    stop_and_wait(&service)?;
    service
        .delete()
        .map_err(|e| scm_error("cannot delete the service", e))?;
    println!("service {SERVICE_NAME} removed");
    Ok(())
}

fn start() -> Result<(), AgentError> {
    let service =
        open(ServiceAccess::START | ServiceAccess::QUERY_STATUS)?.ok_or_else(not_installed)?;
    match service.start::<&OsStr>(&[]) {
        Ok(()) => {}
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_ALREADY_RUNNING) => {
            println!("service {SERVICE_NAME} is already running");
            return Ok(());
        }
        Err(e) => return Err(scm_error("cannot start the service", e)),
    }
    let status = wait_while(&service, ServiceState::StartPending, START_WAIT)?;
    match status.current_state {
        ServiceState::Running => {
            println!("service {SERVICE_NAME} started");
            Ok(())
        }
        ServiceState::StartPending => Err(AgentError::Task(format!(
            "service {SERVICE_NAME} still starting after {} s",
            START_WAIT.as_secs()
        ))),
        other => Err(AgentError::Task(format!(
            "service {SERVICE_NAME} did not start ({other:?}, exit code {:?}): see its log",
            status.exit_code
        ))),
    }
}

fn stop() -> Result<(), AgentError> {
    let service =
        open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?.ok_or_else(not_installed)?;
    stop_and_wait(&service)?;
    println!("service {SERVICE_NAME} stopped");
    Ok(())
}

/// Asks the service to stop (when it runs) and waits until it has.
fn stop_and_wait(service: &Service) -> Result<(), AgentError> {
    match service.stop() {
        Ok(_) => {}
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_NOT_ACTIVE) => return Ok(()),
        Err(e) => return Err(scm_error("cannot stop the service", e)),
    }
    let status = wait_while(service, ServiceState::StopPending, STOP_WAIT)?;
    if status.current_state == ServiceState::Stopped {
        Ok(())
    } else {
        Err(AgentError::Task(format!(
            "service {SERVICE_NAME} still {:?} after {} s",
            status.current_state,
            STOP_WAIT.as_secs()
        )))
    }
}

/// Polls the service's status while it is `state`, up to `timeout`.
fn wait_while(
    service: &Service,
    state: ServiceState,
    timeout: Duration,
) -> Result<ServiceStatus, AgentError> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = service
            .query_status()
            .map_err(|e| scm_error("cannot read the service's status", e))?;
        if status.current_state != state || Instant::now() >= deadline {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---- the service entry -------------------------------------------------------------------

/// The command line, from `main` to the service thread the SCM starts.
static SERVICE_CLI: Mutex<Option<Cli>> = Mutex::new(None);
/// The service's exit code, from the service thread back to `main`.
static EXIT: AtomicU8 = AtomicU8::new(exit::SUCCESS);

windows_service::define_windows_service!(ffi_service_main, service_main);

pub(super) fn run_as_service(cli: Cli) -> ExitCode {
    if let Ok(mut slot) = SERVICE_CLI.lock() {
        *slot = Some(cli);
    }
    match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        Ok(()) => ExitCode::from(EXIT.load(Ordering::SeqCst)),
        Err(e) if os_error(&e) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => {
            eprintln!(
                "armadito-agent: `service run` is started by the Service Control Manager; use \
                 `armadito-agent service start`, or `armadito-agent daemon` in a console"
            );
            ExitCode::from(exit::COMMAND_LINE)
        }
        Err(e) => {
            eprintln!("armadito-agent: cannot connect to the Service Control Manager: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// Called by the SCM on a thread of its own.
fn service_main(_arguments: Vec<OsString>) {
    let stop = Stop::new();
    let on_control = stop.clone();
    let handle = match service_control_handler::register(SERVICE_NAME, move |control| match control
    {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            on_control.request();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    }) {
        Ok(h) => h,
        Err(e) => {
            // Nothing to report to: the SCM ends the service after its start timeout.
            eprintln!("armadito-agent: cannot register the service control handler: {e}");
            EXIT.store(exit::FAILED, Ordering::SeqCst);
            return;
        }
    };
    report(
        handle,
        ServiceState::StartPending,
        START_WAIT,
        ServiceExitCode::NO_ERROR,
    );
    let code = match serve(handle, stop) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            tracing::error!(exit_code = e.exit_code(), "the service stops: {e}");
            e.exit_code()
        }
    };
    EXIT.store(code, Ordering::SeqCst);
    let exit_code = if code == exit::SUCCESS {
        ServiceExitCode::NO_ERROR
    } else {
        ServiceExitCode::ServiceSpecific(u32::from(code))
    };
    report(handle, ServiceState::Stopped, Duration::ZERO, exit_code);
}

/// Loads the configuration and runs the daemon until `stop` (or an error).
fn serve(handle: ServiceStatusHandle, stop: Stop) -> Result<(), AgentError> {
    let cli = SERVICE_CLI
        .lock()
        .ok()
        .and_then(|mut slot| slot.take())
        .ok_or_else(|| {
            AgentError::Task("internal: the service started without its command line".into())
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Task(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let mut config = Config::load(&cli.options)?;
        if config.log.file.is_none() {
            config.log.file =
                Some(crate::config::defaults::config_file().with_file_name("agent.log"));
        }
        crate::logging::init(&config.log)?;
        let ctx = Context { config, cli };
        report(
            handle,
            ServiceState::Running,
            Duration::ZERO,
            ServiceExitCode::NO_ERROR,
        );
        tracing::info!("service {SERVICE_NAME} running");
        let daemon = crate::daemon::run(&ctx, stop.clone());
        tokio::pin!(daemon);
        tokio::select! {
            result = &mut daemon => result,
            () = stop.requested() => {
                tracing::info!("stop requested by the Service Control Manager");
                report(handle, ServiceState::StopPending, STOP_WAIT, ServiceExitCode::NO_ERROR);
                daemon.await
            }
        }
    })
}

fn report(
    handle: ServiceStatusHandle,
    state: ServiceState,
    wait_hint: Duration,
    exit_code: ServiceExitCode,
) {
    let controls_accepted = match state {
        ServiceState::Running => ServiceControlAccept::STOP | ServiceControlAccept::PRESHUTDOWN,
        _ => ServiceControlAccept::empty(),
    };
    let status = ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code,
        checkpoint: 0,
        wait_hint,
        process_id: None,
    };
    if let Err(e) = handle.set_service_status(status) {
        tracing::warn!("cannot report the service status {state:?}: {e}");
    }
}
